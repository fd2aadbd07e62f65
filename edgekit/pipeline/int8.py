"""The INT8 stage of `edgekit export`: calibrate, quantize under an accuracy budget judged on held-out images,
measure against FP32, and explain which layers lose the most.

The guard chooses its float layers on one half of the judging images and the reported figure comes from the
other half, so the figure is not the one the choice was fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.images import load_array
from ..errors import EdgekitError
from ..measure.quality import run_batched
from ..quantize.config import DEFAULT_MAX_DROP
from ..stats import accuracy, agreement

MAX_HELD_OUT_IMAGES = 400  # read at most this many held-out calibration images (two halves of 200)
GUARD_OFF = "off"


@dataclass
class Judge:
    """Images the guard chooses on (``sel``) and images the reported figure comes from (``held``)."""

    sel_x: np.ndarray
    sel_y: np.ndarray | None
    held_x: np.ndarray
    held_y: np.ndarray | None
    basis: str

    @property
    def labelled(self) -> bool:
        return self.sel_y is not None


def halves(x: np.ndarray, y: np.ndarray | None = None):
    """Even and odd positions: images sorted by class folder stay balanced across both halves."""
    return x[0::2], None if y is None else y[0::2], x[1::2], None if y is None else y[1::2]


def judge_images(source, x, y, images, cal, progress) -> Judge:
    """Labelled eval images when there are some, else calibration images held out from calibration."""
    if y is not None and source.pretrained and len(x) >= 2:
        sx, sy, hx, hy = halves(x, y)
        return Judge(sx, sy, hx, hy, f"top-1 on labelled eval images: layers chosen on {len(sx)}, figure on the "
                                     f"other {len(hx)} (held out)")
    held = cal.held_out
    if held is not None and len(held) >= 2:
        idx = np.linspace(0, len(held) - 1, min(len(held), MAX_HELD_OUT_IMAGES)).round().astype(int)
        jx, _ = load_array(held.subset(sorted(set(idx.tolist()))), source.preprocess, progress,
                           "reading held-out images")
        sx, _, hx, _ = halves(jx)
        return Judge(sx, None, hx, None, f"top-1 agreement with FP32 on calibration-folder images held out from "
                                         f"calibration: layers chosen on {len(sx)}, figure on the other {len(hx)}")
    same = cal.kind in ("images", "builtin") and Path(cal.source).resolve() == Path(images.root).resolve()
    what = "also calibrated on" if same else "not used for calibration"
    if len(x) < 2:
        return Judge(x, None, x, None, f"top-1 agreement with FP32 on {len(x)} eval image ({what})")
    sx, _, hx, _ = halves(x)
    return Judge(sx, None, hx, None, f"top-1 agreement with FP32 on eval images ({what}): layers chosen on "
                                     f"{len(sx)}, figure on the other {len(hx)}")


def resolve_budget(max_drop, n_held: int) -> tuple[float | None, str]:
    """The budget in top-1 points (None: none) and where it comes from, as the report states it."""
    if max_drop == GUARD_OFF:
        return None, "off (--max-drop off)"
    if max_drop is not None:
        if isinstance(max_drop, str) or max_drop < 0:
            raise EdgekitError(f"--max-drop {max_drop}: give top-1 points (e.g. 1 or 0.5), or off")
        return float(max_drop), "--max-drop"
    need = int(np.ceil(100 / DEFAULT_MAX_DROP))
    if n_held < need:
        return None, (f"default {DEFAULT_MAX_DROP:g}-point budget not applied: {n_held} held-out images (1 image = "
                      f"{100 / max(n_held, 1):.1f} points; it needs {need}); pass --eval-data with 200+ labelled "
                      "images or --calib-data with 200+ more images than --calib-size, or set --max-drop")
    return DEFAULT_MAX_DROP, f"default ({DEFAULT_MAX_DROP:g} point; --max-drop sets it, --max-drop off removes it)"


def int8_stage(ctx, q) -> dict:
    """Calibrate, quantize (with the accuracy guard), and measure the INT8 file against the FP32 one.

    ``ctx`` is the export's StageContext, ``q`` its QuantizeOptions."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..data import calibration
    from ..fsutil import sha256_file
    from ..graph.info import load_checked, op_counts, write_meta
    from ..measure.facts import artifact_facts
    from ..measure.timing import compare_latency
    from ..quantize.guard import GuardOptions, quantize_with_guard
    from .calib import calibration_set
    from .common import read_onnx_meta

    source, tmp, fp32_path, x, y, images = ctx.source, ctx.tmp, ctx.fp32_path, ctx.x, ctx.y, ctx.images
    notes, progress, threads, timing = ctx.notes, ctx.progress, ctx.threads, ctx.timing
    cfg, copts, max_drop, max_float_layers = q.config(), q.calib(), q.max_drop, q.max_float_layers
    cal = calibration_set(source, copts, notes)
    judge = judge_images(source, x, y, images, cal, progress)
    budget, budget_source = resolve_budget(max_drop, len(judge.held_x))
    if budget is None and max_drop is None:
        notes.append(budget_source)

    def logits_of(path: Path, xs):
        with OnnxRuntimeRunner(path) as r:
            return run_batched(r, xs)

    def score(logits, labels, ref) -> float:
        return accuracy(logits, labels)["top1"] if labels is not None else agreement(logits, ref)["top1_agreement"]

    sel_ref, held_ref = logits_of(fp32_path, judge.sel_x), logits_of(fp32_path, judge.held_x)
    sel_base = score(sel_ref, judge.sel_y, sel_ref)
    held_base = score(held_ref, judge.held_y, held_ref)

    def metric(path: Path) -> float:
        return score(logits_of(path, judge.sel_x), judge.sel_y, sel_ref)

    sub, sub_ref = judge.sel_x[:64], sel_ref[:64]

    def sensitivity(path: Path) -> float:
        return float(((logits_of(path, sub) - sub_ref) ** 2).mean())

    key = calibration.cache_key(sha256_file(fp32_path), source.preprocess, {**cfg.method_fields(),
                                "target": cfg.target}, cal)
    cache_file = Path(copts.cache) if copts.cache else calibration.DEFAULT_CACHE_DIR / f"{source.name}-{key[:16]}.json"
    int8_path = tmp / "model_int8.onnx"
    guard = GuardOptions(metric, sel_base, budget, sensitivity, max_float_layers)
    result = quantize_with_guard(fp32_path, int8_path, cfg, cal, cache_file, key, guard, progress)
    held_int8 = logits_of(int8_path, judge.held_x)
    held_score = score(held_int8, judge.held_y, held_ref)
    held_drop = held_base - held_score
    within = None if budget is None else held_drop <= budget
    layers = _explain(fp32_path, int8_path, judge.sel_x, result)
    qmodel = load_checked(int8_path)
    write_meta(qmodel, {**read_onnx_meta(fp32_path), "precision": "int8", "quantization": cfg.to_dict(),
                        "calibration": cal.describe()})
    import onnx

    onnx.save(qmodel, str(int8_path))
    if cfg.target == "tensorrt":  # a file TensorRT's parser would refuse is not shipped (nor carried to a board)
        from ..backends.tensorrt.onnx_rules import check

        check(int8_path, qmodel)
    if within is False:
        int8_path = int8_path.rename(tmp / "model_int8_over_budget.onnx")
    ops = op_counts(qmodel)
    lat = compare_latency({"fp32": fp32_path, "int8": int8_path}, x, timing, threads, progress)
    speedup = lat["fp32"]["median_ms"] / lat["int8"]["median_ms"]
    if cfg.target == "tensorrt":
        notes.append("the TensorRT-form Q/DQ graph was timed on this CPU with onnxruntime, which is not its target: "
                     "measure the engine on the GPU (edgekit build on the board)")
    elif speedup < 1.0:
        notes.append(f"INT8 does not pay on this CPU: {lat['int8']['median_ms']:.3f} ms vs FP32 "
                     f"{lat['fp32']['median_ms']:.3f} ms; ship FP32 for speed, or try --exclude-ops depthwise,se")
    if cfg.target == "cpu" and cfg.reduce_range:
        notes.append("INT8 weights in 7 bits (reduce_range): without VNNI, x86 INT8 kernels saturate full-range "
                     "u8 x s8 products; pass --full-range when the target CPU has VNNI")
    if within is False:
        notes.append(f"INT8 misses the accuracy budget on the held-out images: drop {held_drop:.2f} > {budget} "
                     f"(selection drop {result.drop:.2f}); the best attempt is kept aside as {int8_path.name}")
    desc = result.describe()
    desc.update(baseline=held_base, metric=held_score, drop=held_drop, within_budget=within)
    return {
        "file": int8_path.name, "artifact": artifact_facts(int8_path), "config": cfg.to_dict(),
        "calibration": cal.describe(), "judged_by": judge.basis, "max_drop": budget,
        "budget": {"max_drop": budget, "source": budget_source}, **desc,
        "selection": {"images": int(len(judge.sel_x)), "baseline": sel_base, "metric": result.metric,
                      "drop": result.drop},
        "held_out": {"images": int(len(judge.held_x)), "baseline": held_base, "metric": held_score,
                     "drop": held_drop},
        "qdq_nodes": ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0),
        "size_ratio_to_fp32": int8_path.stat().st_size / fp32_path.stat().st_size,
        "agreement_with_fp32": agreement(held_int8, held_ref),
        "accuracy_delta": None if judge.held_y is None else held_score - held_base,
        **layers,
        "latency": lat, "speedup_vs_fp32": speedup,
        "latency_delta_ms": lat["int8"]["median_ms"] - lat["fp32"]["median_ms"],
        "threads": threads,
    }


def _explain(fp32_path: Path, int8_path: Path, sel_x: np.ndarray, result) -> dict:
    """The per-layer table (onnxruntime's qdq_loss_debug), against the graph the quantizer read."""
    import tempfile

    from ..quantize.explain import images_for, layer_table
    from ..quantize.ort import preprocess_for_quantization

    xs = images_for(sel_x)
    with tempfile.TemporaryDirectory(prefix="edgekit-explain-") as d:
        pre = Path(d) / "pre.onnx"
        preprocess_for_quantization(fp32_path, pre)
        table = layer_table(pre, int8_path, xs, result.float_nodes, result.sensitivity)
    return {"layers": table, "layers_judged_on": f"{len(xs)} selection images"}
