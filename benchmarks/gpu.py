"""The GPU paths edgekit has without TensorRT, on the trained families: PyTorch eager on CUDA in FP32, FP32
channels_last and FP16 channels_last (edgekit's ``TorchRunner``, the side by side ``edgekit profile`` puts beside a
TensorRT engine), each judged on the Fashion-MNIST judge split and timed end to end (host to device, inference,
device to host) at batch 1 and a throughput batch.

Needs a CUDA GPU; run where one is (the device machine), with the weights train_models.py cached:

    python benchmarks/gpu.py --weights-dir ~/.cache/edgekit-bench --json benchmarks/results/gpu.json

Engines run in a new order each sweep (``sweep_order``); each ratio to FP32 is taken within a sweep, then the median
and range over sweeps are reported, so a clock change between sweeps cannot pass for a speed-up.

Results: gpu-h100.json was measured before TorchRunner turned on torch.backends.cudnn.benchmark (off, PyTorch's
default); gpu-h100-cudnn-benchmark.json with it on, as the runner now does.
"""

from __future__ import annotations

import platform
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, parser, spread  # noqa: E402
from peers import TRAINED_PRE, fmnist_dir, trained_weights  # noqa: E402
from train_models import prepared_split  # noqa: E402

FAMILIES = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]
ENGINES = [("torch fp32", False, False), ("torch fp32 channels_last", False, True),
           ("torch fp16 channels_last", True, True)]


def top1_logits(runner, x: np.ndarray, chunk: int = 250) -> np.ndarray:
    return np.concatenate([runner.infer(np.ascontiguousarray(x[i:i + chunk])) for i in range(0, len(x), chunk)])


def family_rows(name: str, weights: Path, x: np.ndarray, y: np.ndarray, batches: list[int], args) -> list[dict]:
    import copy

    from edgekit.backends.torch import TorchRunner
    from edgekit.measure.gpu import batch_of
    from edgekit.measure.timing import TimingOptions, sweep_order, time_runner
    from edgekit.models.source import PreprocessOverrides, open_model

    model = open_model(name, str(weights), 10, overrides=PreprocessOverrides(*TRAINED_PRE)).torch_model
    with TorchRunner(copy.deepcopy(model), "cpu", threads=args.threads) as cpu:
        ref = top1_logits(cpu, x).argmax(1)
    runners = [TorchRunner(copy.deepcopy(model), "cuda", fp16=fp16, channels_last=cl) for _, fp16, cl in ENGINES]
    for r in runners:
        r.activate()
    try:
        preds = [top1_logits(r, x).argmax(1) for r in runners]
        timing = TimingOptions(warmup=args.warmup, repeats=args.repeats)
        ms = {(e, b): [] for e in range(len(ENGINES)) for b in batches}
        for sweep in range(args.sweeps):
            for e in sweep_order(len(ENGINES), sweep):
                for b in batches:
                    ms[e, b].append(time_runner(runners[e], batch_of(x, b), timing)["median_ms"])
    finally:
        for r in runners:
            r.deactivate()
    rows = []
    for e, (label, _, _) in enumerate(ENGINES):
        for b in batches:
            ratios = [m / m0 for m, m0 in zip(ms[e, b], ms[0, b])]
            rows.append({"model": name, "engine": label, "batch": b,
                         "top1": round(100 * float((preds[e] == y).mean()), 2),
                         "agree_cpu": round(100 * float((preds[e] == ref).mean()), 2),
                         "median_ms": round(statistics.median(ms[e, b]), 4),
                         "images_per_s": round(b / statistics.median(ms[e, b]) * 1e3, 1),
                         "vs_fp32": round(statistics.median(ratios), 3),
                         "vs_fp32_range": f"{min(ratios):.3f}-{max(ratios):.3f}",
                         "sweeps_ms": spread(ms[e, b])})
    return rows


def main() -> None:
    ap = parser(__doc__, FAMILIES, "benchmarks/results/gpu.json")
    ap.add_argument("--weights-dir", type=Path, default=Path.home() / ".cache" / "edgekit-bench")
    ap.add_argument("--data", type=Path, default=None, help="the Fashion-MNIST folder (default ../shared/data)")
    ap.add_argument("--judge", type=int, default=5000, help="judge images (the split has 5000)")
    ap.add_argument("--batch", type=int, default=64, help="the throughput batch, timed beside batch 1")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run this on a machine with one")
    x, y = prepared_split(args.data or fmnist_dir(), "judge", args.judge)
    rows = []
    for name in args.models:
        rows += family_rows(name, trained_weights(name, args.weights_dir), x, y, [1, args.batch], args)
    p = torch.cuda.get_device_properties(0)
    meta = {"gpu": p.name, "compute_capability": f"{p.major}.{p.minor}", "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "cpu": platform.processor(),
            "judge_images": len(y), "resolution": TRAINED_PRE[0], "sweeps": args.sweeps, "repeats": args.repeats,
            "warmup": args.warmup, "cudnn_benchmark": "on (TorchRunner sets it on CUDA)",
            "timed": "end to end: host to device, inference, device to host (TorchRunner)",
            "weights": {r["model"]: trained_weights(r["model"], args.weights_dir).name for r in rows}}
    emit("PyTorch eager on the GPU: the trained families", rows,
         [("model", "model"), ("engine", "engine"), ("batch", "batch"), ("top1", "top-1 %"),
          ("agree_cpu", "agree CPU %"), ("median_ms", "median ms"), ("images_per_s", "img/s"),
          ("vs_fp32", "x fp32"), ("vs_fp32_range", "range")], args.json, meta)


if __name__ == "__main__":
    main()
