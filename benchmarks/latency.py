"""ONNX Runtime vs PyTorch eager on this CPU: batch-1 latency of edgekit's FP32 export.

Each engine runs in turn (never interleaved), the sweep is repeated, and the median of the per-sweep
medians is reported with its spread. Random weights: latency does not depend on weight values.

    python benchmarks/latency.py --threads 2 --repeats 200 --sweeps 3
"""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, parser, spread  # noqa: E402

MODELS = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]


def main() -> None:
    ap = parser(__doc__, MODELS, "latency.json")
    args = ap.parse_args()

    from edgekit.api import ExportRequest
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.backends.torch import TorchRunner
    from edgekit.measure.timing import TimingOptions, sweep_order, time_runner
    from edgekit.models.source import open_model
    from edgekit.pipeline.export import export_model
    from edgekit.report.document import environment

    opts = TimingOptions(args.warmup, args.repeats)
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    rows = []
    for name in args.models:
        export_model(ExportRequest(name, work / name, weights="random"))
        src = open_model(name, "random")
        x = np.random.default_rng(0).standard_normal(src.input_shape, dtype=np.float32)
        ort_ms, torch_ms = [], []
        engines = [(lambda: OnnxRuntimeRunner(work / name / "model.onnx", threads=args.threads), ort_ms),
                   (lambda: TorchRunner(src.torch_model, threads=args.threads, input_shape=src.input_shape), torch_ms)]
        for sweep in range(args.sweeps):  # the two take turns going first
            for make, times in (engines[i] for i in sweep_order(len(engines), sweep)):
                with make() as r:
                    times.append(time_runner(r, x, opts)["median_ms"])
                gc.collect()
        o, t = spread(ort_ms), spread(torch_ms)
        rows.append({"model": name, "ort_ms": o["median"], "torch_ms": t["median"],
                     "torch_over_ort": t["median"] / o["median"], "ort_spread": o["spread"],
                     "torch_spread": t["spread"], "ort": o, "torch": t})
    emit(f"batch 1, {args.threads} threads, median of {args.repeats} runs x {args.sweeps} sweeps", rows,
         [("model", "model"), ("ort_ms", "onnxruntime ms"), ("torch_ms", "torch eager ms"),
          ("torch_over_ort", "torch / ort"), ("ort_spread", "ort spread"), ("torch_spread", "torch spread")],
         args.json, {"environment": environment(args.threads), "timing": vars(opts), "sweeps": args.sweeps})


if __name__ == "__main__":
    main()
