"""FP32 vs INT8 vs INT8-with-exclusions on this CPU: latency, size, agreement on real photos.

Random weights (ImageNet weights cannot be downloaded here): latency and size do not depend on the
values; agreement is measured on edgekit's built-in real photos. Each session runs alone, in turn.

    python benchmarks/int8.py --threads 2 --repeats 100 --sweeps 3
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, parser, spread  # noqa: E402

MODELS = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]
EXCLUDE = ("depthwise", "se", "hardswish", "silu")


def main() -> None:
    ap = parser(__doc__, MODELS, "int8.json")
    args = ap.parse_args()


    from edgekit.api import CalibOptions, export_model
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.data import builtin_photos, load_array, scan
    from edgekit.export import run_batched
    from edgekit.profile import TimingOptions, compare_latency
    from edgekit.quantize import QuantConfig
    from edgekit.report import environment
    from edgekit.stats import agreement

    opts = TimingOptions(args.warmup, args.repeats)
    work = Path(tempfile.mkdtemp(prefix="edgekit-int8-"))
    rows = []
    for name in args.models:
        files = {}
        for variant, exclude in (("int8", ()), ("int8_excl", EXCLUDE)):
            out = work / f"{name}-{variant}"
            rep = export_model(name, out, weights="random", int8=True, quant=QuantConfig(exclude=exclude),
                               calib=CalibOptions(cache=str(work / f"{name}-{variant}.json")),
                               threads=args.threads)
            files["fp32"] = out / "model.onnx"
            files[variant] = out / rep["int8"]["file"]
            pre = rep["preprocess"]
        from edgekit.preprocess import Preprocess

        x, _ = load_array(scan(builtin_photos()), Preprocess.from_dict(pre))
        logits = {}
        for k, p in files.items():
            with OnnxRuntimeRunner(p, threads=args.threads) as r:
                logits[k] = run_batched(r, x)
        sweeps = {k: [] for k in files}
        for _ in range(args.sweeps):
            for k, lat in compare_latency(files, x, opts, args.threads).items():
                sweeps[k].append(lat["median_ms"])
        s = {k: spread(v) for k, v in sweeps.items()}
        row = {"model": name}
        for k in files:
            row[f"{k}_ms"] = s[k]["median"]
            row[f"{k}_mb"] = files[k].stat().st_size / 1e6
            row[f"{k}_spread"] = s[k]["spread"]
            if k != "fp32":
                row[f"{k}_speedup"] = s["fp32"]["median"] / s[k]["median"]
                ag = agreement(logits[k], logits["fp32"])
                row[f"{k}_agree"] = ag["top1_agreement"]
                row[f"{k}_cos"] = ag["mean_cosine"]
        rows.append(row)
    emit(f"FP32 vs INT8 on onnxruntime CPU, batch 1, {args.threads} threads, median of {args.repeats} x "
         f"{args.sweeps} sweeps; agreement on {len(x)} real photos", rows,
         [("model", "model"), ("fp32_ms", "fp32 ms"), ("int8_ms", "int8 ms"), ("int8_speedup", "int8 x"),
          ("int8_excl_ms", "int8-excl ms"), ("int8_excl_speedup", "excl x"), ("fp32_mb", "fp32 MB"),
          ("int8_mb", "int8 MB"), ("int8_cos", "int8 cos"), ("int8_excl_cos", "excl cos"),
          ("int8_agree", "int8 agree %"), ("int8_spread", "int8 spread")],
         args.json, {"environment": environment(args.threads), "timing": vars(opts), "sweeps": args.sweeps,
                     "exclusions": EXCLUDE})


if __name__ == "__main__":
    main()
