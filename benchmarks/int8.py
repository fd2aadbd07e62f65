"""FP32 vs INT8 vs INT8-with-exclusions on this CPU: latency, size, agreement on real images.

Stand-in weights (ImageNet weights cannot be downloaded here): random, with BatchNorm statistics re-estimated on
the calibration images, as in peers.py. Raw random weights give near-constant logits, where agreement could not
fail; these can (INT8 agreement 20-60% on the depthwise families), but they say little about INT8 on trained
weights. Calibrated on the 7 photos and 100 Fashion-MNIST test images, judged on 200 others. Latency and size do
not depend on the values. Each session runs alone, in turn.

    python benchmarks/int8.py --threads 2 --repeats 100 --sweeps 3
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, parser, spread  # noqa: E402
from peers import bn_calibrated_weights, judge_images  # noqa: E402

MODELS = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]
EXCLUDE = ("depthwise", "se", "hardswish", "silu")


def main() -> None:
    ap = parser(__doc__, MODELS, "int8.json")
    args = ap.parse_args()

    from edgekit.api import BackendOptions, ExportRequest, QuantizeOptions
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.data.images import load_array, scan
    from edgekit.measure.quality import run_batched
    from edgekit.measure.timing import TimingOptions, compare_latency
    from edgekit.models.registry import get_card
    from edgekit.pipeline.export import export_model
    from edgekit.report.document import environment
    from edgekit.stats import agreement

    opts = TimingOptions(args.warmup, args.repeats)
    work = Path(tempfile.mkdtemp(prefix="edgekit-int8-"))
    calib_dir, judge_dir, _, judged_on = judge_images(work)
    rows = []
    for name in args.models:
        pre = get_card(name).preprocess
        weights = bn_calibrated_weights(name, load_array(scan(calib_dir, labels=False), pre)[0],
                                        work / f"{name}-weights.pt")
        files = {}
        for variant, exclude in (("int8", ()), ("int8_excl", EXCLUDE)):
            out = work / f"{name}-{variant}"
            rep = export_model(ExportRequest(
                name, out, weights=str(weights), backend=BackendOptions(threads=args.threads),
                quantize=QuantizeOptions("int8", calib_data=str(calib_dir), exclude_ops=tuple(exclude),
                                         calib_cache=str(work / f"{name}-{variant}.json"))))
            files["fp32"] = out / "model.onnx"
            files[variant] = out / rep["int8"]["file"]
        x, _ = load_array(scan(judge_dir or calib_dir, labels=False), pre)
        logits = {}
        for k, p in files.items():
            with OnnxRuntimeRunner(p, threads=args.threads) as r:
                logits[k] = run_batched(r, x)
        sweeps = {k: [] for k in files}
        for sweep in range(args.sweeps):
            for k, lat in compare_latency(files, x, opts, args.threads, sweep=sweep).items():
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
         f"{args.sweeps} sweeps; agreement on {len(x)} real images", rows,
         [("model", "model"), ("fp32_ms", "fp32 ms"), ("int8_ms", "int8 ms"), ("int8_speedup", "int8 x"),
          ("int8_excl_ms", "int8-excl ms"), ("int8_excl_speedup", "excl x"), ("fp32_mb", "fp32 MB"),
          ("int8_mb", "int8 MB"), ("int8_cos", "int8 cos"), ("int8_excl_cos", "excl cos"),
          ("int8_agree", "int8 agree %"), ("int8_spread", "int8 spread")],
         args.json, {"environment": environment(args.threads), "timing": vars(opts), "sweeps": args.sweeps,
                     "exclusions": EXCLUDE, "images": judged_on,
                     "weights": "random, BatchNorm statistics re-estimated on the calibration images"})


if __name__ == "__main__":
    main()
