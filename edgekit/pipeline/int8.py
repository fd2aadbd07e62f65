"""The INT8 stage of `edgekit export`: calibrate, quantize under an accuracy budget judged on held-out images,
measure against FP32, and explain which layers lose the most.

The guard chooses its float layers on one half of the judging images and the reported figure comes from the
other half, so the figure is not the one the choice was fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.stream import ImageStream
from ..errors import EdgekitError
from ..measure.quality import outcomes, run_batched
from ..quantize.config import DEFAULT_MAX_DROP

MAX_HELD_OUT_IMAGES = 400  # read at most this many held-out calibration images (two halves of 200)
GUARD_OFF = "off"


@dataclass
class Judge:
    """Images the guard chooses on (``sel``) and images the reported figure comes from (``held``): streams, read
    once per trial, never held as arrays."""

    sel: ImageStream
    held: ImageStream
    basis: str
    labelled: bool

    @classmethod
    def halves(cls, stream: ImageStream, basis: str, labelled: bool) -> "Judge":
        """Even and odd positions: images sorted by class folder stay balanced across both halves."""
        n = len(stream)
        return cls(stream.subset(range(0, n, 2)), stream.subset(range(1, n, 2)), basis, labelled)


def judge_images(ctx, cal) -> Judge:
    """Labelled eval images when there are some, else calibration images held out from calibration."""
    stream = ctx.images
    n = len(stream)
    if ctx.labelled and n >= 2:
        return Judge.halves(stream, f"top-1 on labelled eval images: layers chosen on {(n + 1) // 2}, figure on the "
                                    f"other {n // 2} (held out)", True)
    held = cal.held_out
    if held is not None and len(held) >= 2:
        idx = np.linspace(0, len(held) - 1, min(len(held), MAX_HELD_OUT_IMAGES)).round().astype(int)
        hs = ImageStream(held.subset(sorted(set(idx.tolist()))), ctx.source.preprocess).cache(
            ctx.progress, "reading held-out images")
        m = len(hs)
        return Judge.halves(hs, f"top-1 agreement with FP32 on calibration-folder images held out from "
                                f"calibration: layers chosen on {(m + 1) // 2}, figure on the other {m // 2}", False)
    same = cal.kind in ("images", "builtin") and Path(cal.source).resolve() == Path(stream.images.root).resolve()
    what = "also calibrated on" if same else "not used for calibration"
    if n < 2:
        return Judge(stream, stream, f"top-1 agreement with FP32 on {n} eval image ({what})", False)
    return Judge.halves(stream, f"top-1 agreement with FP32 on eval images ({what}): layers chosen on "
                                f"{(n + 1) // 2}, figure on the other {n // 2}", False)


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
        return None, (f"default {DEFAULT_MAX_DROP:g}-point budget not applied: {n_held} held-out images cannot show a "
                      f"{DEFAULT_MAX_DROP:g}-point drop (it takes {need}); pass --eval-data with 200+ labelled images "
                      "or --calib-data with 200+ more images than --calib-size, or set --max-drop")
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

    source, tmp, fp32_path = ctx.source, ctx.tmp, ctx.fp32_path
    notes, progress, threads, timing = ctx.notes, ctx.progress, ctx.threads, ctx.timing
    cfg, copts, max_drop, max_float_layers = q.config(), q.calib(), q.max_drop, q.max_float_layers
    cal = calibration_set(source, copts, notes, progress)
    judge = judge_images(ctx, cal)
    budget, budget_source = resolve_budget(max_drop, len(judge.held))
    if budget is None and max_drop is None:
        notes.append(budget_source)

    def fp32_on(images, desc):
        with OnnxRuntimeRunner(fp32_path) as r:
            return outcomes([r], images, progress=progress, desc=desc)[0]

    def score(o, ref) -> float:
        return o.accuracy()["top1"] if judge.labelled else o.top1_agreement_with(ref)

    sel_ref = fp32_on(judge.sel, "FP32 on the selection images")
    sel_base = score(sel_ref, sel_ref)

    def metric(path: Path) -> float:
        with OnnxRuntimeRunner(path) as r:
            return score(outcomes([r], judge.sel, progress=progress, desc=f"judging {path.name}")[0], sel_ref)

    sub = judge.sel.head(64)
    with OnnxRuntimeRunner(fp32_path) as r:
        sub_ref = run_batched(r, sub)

    def sensitivity(path: Path) -> float:
        with OnnxRuntimeRunner(path) as r:
            return float(((run_batched(r, sub) - sub_ref) ** 2).mean())

    key = calibration.cache_key(sha256_file(fp32_path), source.preprocess, {**cfg.method_fields(),
                                "target": cfg.target}, cal)
    cache_file = Path(copts.cache) if copts.cache else calibration.DEFAULT_CACHE_DIR / f"{source.name}-{key[:16]}.json"
    int8_path = tmp / "model_int8.onnx"
    guard = GuardOptions(metric, sel_base, budget, sensitivity, max_float_layers)
    result = quantize_with_guard(fp32_path, int8_path, cfg, cal, cache_file, key, guard, progress)
    with OnnxRuntimeRunner(fp32_path) as ref_r, OnnxRuntimeRunner(int8_path) as int8_r:
        held_ref, held_int8 = outcomes([ref_r, int8_r], judge.held, reference=0, progress=progress,
                                       desc="FP32 and INT8 on the held-out images")
    held_base = score(held_ref, held_ref)
    held_score = score(held_int8, held_ref)
    held_drop = held_base - held_score
    within = None if budget is None else held_drop <= budget
    layers = _explain(fp32_path, int8_path, judge.sel, result)
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
    lat = compare_latency({"fp32": fp32_path, "int8": int8_path}, ctx.sample(1), timing, threads, progress)
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
        "selection": {"images": int(len(judge.sel)), "baseline": sel_base, "metric": result.metric,
                      "drop": result.drop},
        "held_out": {"images": int(len(judge.held)), "baseline": held_base, "metric": held_score,
                     "drop": held_drop},
        "qdq_nodes": ops.get("QuantizeLinear", 0) + ops.get("DequantizeLinear", 0),
        "size_ratio_to_fp32": int8_path.stat().st_size / fp32_path.stat().st_size,
        "agreement_with_fp32": held_int8.agreement(),
        "accuracy_delta": held_score - held_base if judge.labelled else None,
        **layers,
        "latency": lat, "speedup_vs_fp32": speedup,
        "latency_delta_ms": lat["int8"]["median_ms"] - lat["fp32"]["median_ms"],
        "threads": threads,
    }


def _explain(fp32_path: Path, int8_path: Path, sel: ImageStream, result) -> dict:
    """The per-layer table (onnxruntime's qdq_loss_debug), against the graph the quantizer read."""
    import tempfile

    from ..quantize.explain import images_for, layer_table
    from ..quantize.ort import preprocess_for_quantization

    xs = images_for(sel)
    with tempfile.TemporaryDirectory(prefix="edgekit-explain-") as d:
        pre = Path(d) / "pre.onnx"
        preprocess_for_quantization(fp32_path, pre)
        table = layer_table(pre, int8_path, xs, result.float_nodes, result.sensitivity)
    return {"layers": table, "layers_judged_on": f"{len(xs)} selection images"}
