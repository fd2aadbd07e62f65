"""Pruning x INT8 on this CPU: size (MB and gzip MB), MACs and onnxruntime latency, timed on a real photo.

Random weights: size, MACs and latency do not depend on the values (accuracy is not measured here; see
tests/prune/test_prune.py for pruning with fine-tuning on real data). Timed on a preprocessed built-in photo, not on
zeros, whose activations can take faster paths (denormals, zero skipping) than real ones.

    python benchmarks/prune.py --threads 2
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, parser, spread  # noqa: E402


def main() -> None:
    ap = parser(__doc__, ["squeezenet1_1", "mobilenet_v2"], "prune.json")
    ap.add_argument("--ratios", nargs="+", type=float, default=[0.0, 0.3, 0.5])
    args = ap.parse_args()

    from edgekit.api import BackendOptions, ExportRequest, GraphOptions, QuantizeOptions
    from edgekit.data.images import builtin_photos, load_array, scan
    from edgekit.graph.info import count_macs, load_checked
    from edgekit.measure.timing import TimingOptions, compare_latency
    from edgekit.models.registry import get_card
    from edgekit.pipeline.export import export_model
    from edgekit.report.document import environment

    work = Path(tempfile.mkdtemp(prefix="edgekit-prune-"))
    opts = TimingOptions(20, args.repeats)
    rows = []
    for name in args.models:
        files = {}
        for r in args.ratios:
            out = work / f"{name}-{r}"
            rep = export_model(ExportRequest(
                name, out, weights="random", export=GraphOptions(prune_ratio=r or None),
                quantize=QuantizeOptions("int8", calib_cache=str(out.with_suffix(".json"))),
                backend=BackendOptions(threads=args.threads)))
            files[(r, "fp32")] = out / "model.onnx"
            files[(r, "int8")] = out / rep["int8"]["file"]
        x, _ = load_array(scan(builtin_photos()).subset([0]), get_card(name).preprocess)
        sweeps = {k: [] for k in files}
        for sweep in range(args.sweeps):
            lat = compare_latency({f"{r}-{p}": f for (r, p), f in files.items()}, x, opts, args.threads,
                                  sweep=sweep)
            for (r, p) in files:
                sweeps[(r, p)].append(lat[f"{r}-{p}"]["median_ms"])
        for (r, p), f in files.items():
            data = f.read_bytes()
            s = spread(sweeps[(r, p)])
            rows.append({"model": name, "ratio": r, "precision": p, "size_mb": len(data) / 1e6,
                         "gzip_mb": len(gzip.compress(data, 9)) / 1e6, "gmacs": count_macs(load_checked(f)) / 1e9,
                         "latency_ms": s["median"], "spread": s["spread"]})
    emit(f"pruning x precision, onnxruntime CPU, batch 1, {args.threads} threads, median of {args.repeats} x "
         f"{args.sweeps} sweeps", rows,
         [("model", "model"), ("ratio", "ratio"), ("precision", "precision"), ("size_mb", "MB"),
          ("gzip_mb", "gzip MB"), ("gmacs", "GMACs"), ("latency_ms", "ms"), ("spread", "spread")],
         args.json, {"environment": environment(args.threads), "timing": vars(opts), "sweeps": args.sweeps})


if __name__ == "__main__":
    main()
