#!/bin/sh
# The GPU side on the first machine with an NVIDIA GPU (no TensorRT needed): cuda-python memory, streams, events
# and graphs through edgekit's cudamem; torch's buffers; TorchRunner on CUDA in FP32 and FP16; the PyTorch side of
# the GPU comparison; device probing and doctor's GPU rows. Writes $OUT/gpu_check.json (or ./gpu-check-out/) and
# prints what still needs TensorRT itself. Exit 1 on a wrong result, 2 when a part could not run. See
# docs/tensorrt.md ("The device check").
#
# edgekit needs numpy and rich beyond torch: a machine without rich installs it from benchmarks/gpu_check_wheels
# when that folder was brought along (made on a networked host with
#   python -m pip download -d benchmarks/gpu_check_wheels --only-binary=:all: --python-version 3.12 rich
# about 2 MB: rich, markdown-it-py, mdurl, pygments).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import rich" 2>/dev/null && [ -d benchmarks/gpu_check_wheels ]; then
  "$PY" -m pip install -q --no-index --find-links benchmarks/gpu_check_wheels rich
fi
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA',
torch.version.cuda, '| GPU', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')" || true
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 420 "$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json"
