"""Full-range against 7-bit INT8 weights (onnxruntime's ``reduce_range``) on the trained families, on this CPU.

Without VNNI, x86 INT8 kernels add each pair of u8 x s8 products into a saturating int16, so full-range weights can
clip where the QDQ graph itself (run as float: ``ORT_DISABLE_ALL`` keeps every DequantizeLinear and runs float
convolutions) would not. edgekit picks 7-bit weights on such CPUs; this measures what each choice costs in top-1
on the judge split, beside that float reading of the same graph (what the quantization alone costs). On a VNNI
CPU the full-range rows should equal their float reading.

    python benchmarks/int8_range.py --json benchmarks/results/int8-range-<cpu>.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, parser  # noqa: E402
from peers import TRAINED_PRE, fmnist_dir, trained_weights  # noqa: E402
from train_models import prepared_split  # noqa: E402

FAMILIES = ["squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "efficientnet_b0"]


def top1(path: Path, x: np.ndarray, threads: int, as_float: bool = False) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if as_float:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]).argmax(1)


def family_row(name: str, weights: Path, cal: np.ndarray, x: np.ndarray, y: np.ndarray, threads: int) -> dict:
    from edgekit.graph.export import onnx_from_torch
    from edgekit.models.source import PreprocessOverrides, open_model
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard

    model = open_model(name, str(weights), 10, overrides=PreprocessOverrides(*TRAINED_PRE)).torch_model
    with tempfile.TemporaryDirectory() as d:
        fp32 = Path(d) / "fp32.onnx"
        onnx_from_torch(model, (1, 3, TRAINED_PRE[0], TRAINED_PRE[0]), fp32)
        ref = top1(fp32, x, threads)
        row = {"model": name, "fp32_top1": round(100 * float((ref == y).mean()), 2)}
        for label, rr in (("full", False), ("7bit", True)):
            q = Path(d) / f"{label}.onnx"
            quantize_with_guard(fp32, q, QuantConfig(reduce_range=rr), cal, Path(d) / f"{label}.json", label)
            got = top1(q, x, threads)
            row[f"{label}_drop"] = round(100 * float((ref == y).mean() - (got == y).mean()), 2)
            row[f"{label}_agree"] = round(100 * float((got == ref).mean()), 2)
            emulated = top1(q, x, threads, as_float=True)
            row[f"{label}_as_float_drop"] = round(100 * float((ref == y).mean() - (emulated == y).mean()), 2)
    return row


def main() -> None:
    ap = parser(__doc__, FAMILIES, "benchmarks/results/int8-range.json")
    ap.add_argument("--weights-dir", type=Path, default=Path.home() / ".cache" / "edgekit-bench")
    ap.add_argument("--data", type=Path, default=None, help="the Fashion-MNIST folder (default ../shared/data)")
    ap.add_argument("--judge", type=int, default=2000, help="judge images (the split has 5000)")
    ap.add_argument("--calib", type=int, default=300, help="calibration images, from the fine-tuning split")
    args = ap.parse_args()
    from rich.progress import track

    from edgekit.report.document import environment

    data = args.data or fmnist_dir()
    cal, _ = prepared_split(data, "finetune", args.calib)
    x, y = prepared_split(data, "judge", args.judge)
    rows = [family_row(name, trained_weights(name, args.weights_dir), cal, x, y, args.threads)
            for name in track(args.models, description="quantizing and judging")]
    meta = {"environment": environment(args.threads), "judge_images": len(y), "calibration_images": len(cal),
            "calibration_split": "finetune", "weights": {r["model"]: trained_weights(r["model"], args.weights_dir)
                                                          .name for r in rows},
            "drops": "top-1 points on the judge split against the FP32 ONNX; as_float: the same QDQ file run with "
                     "ORT_DISABLE_ALL (DequantizeLinear, then float kernels)"}
    emit("INT8 weights: full range against 7 bits (reduce_range)", rows,
         [("model", "model"), ("fp32_top1", "FP32 top-1"), ("full_drop", "full drop"),
          ("full_as_float_drop", "full as float"), ("7bit_drop", "7-bit drop"),
          ("7bit_as_float_drop", "7-bit as float"), ("full_agree", "full agree"),
          ("7bit_agree", "7-bit agree")], args.json, meta)


if __name__ == "__main__":
    main()
