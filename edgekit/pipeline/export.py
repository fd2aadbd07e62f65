"""`export`: a verified FP32 ONNX file, then the stages the request asks for (INT8 or FP16, the --optimize search,
a Jetson bundle or a TensorRT engine), then one report.

The walk is one way: the CLI (or a recipe, or a script) builds an ExportRequest; ``export_model`` opens the model,
writes and verifies the FP32 file in a staging folder, hands each stage a StageContext, gathers the stages'
sections into the report, and renames the folder into place.
"""

from __future__ import annotations

from pathlib import Path

from ..data.images import scan
from ..data.stream import ImageStream
from ..errors import EdgekitError
from ..fsutil import check_out_dir, staged_dir
from ..graph.export import onnx_from_torch, simplify
from ..measure.facts import artifact_facts
from ..measure.quality import Outcomes, Tolerance, check_tolerance, outcomes, run_batched
from ..measure.timing import TimingOptions
from ..models.source import ModelSource, open_model
from ..progress import make_progress
from ..report import document as report_mod
from .common import StageContext, image_notes, images_for, load_onnx, stream_summary
from .request import ExportRequest


def export_model(request: ExportRequest, *, timing: TimingOptions | None = None,
                 board_budgets: dict | None = None) -> dict:
    """Export ``request.model`` (zoo name or .onnx) to ``OUT/model.onnx``, verified against its source, plus
    what the request asks for: ``model_int8.onnx`` (QDQ, calibrated on real images, guarded by the accuracy budget
    on held-out images), ``model_fp16.onnx``, ``model_best.*`` (--optimize), ``bundle/`` (Jetson) or a TensorRT
    engine built and measured on this machine's GPU. ``timing`` sets the INT8-vs-FP32 timing; ``board_budgets``
    is a recipe's latency budget that the board checks. Returns the report, also written to ``OUT/report.json``
    and ``OUT/report.md``. An INT8 file over its accuracy budget on the held-out images raises
    ``BudgetExceededError`` (its ``report`` attribute holds the report), as the command exits 1: the files are
    written, the INT8 one kept aside as ``model_int8_over_budget.onnx``.
    """
    r = request
    out, g = r.out_dir, r.export
    if r.engine is not None:
        from ..backends import registry

        registry.require("tensorrt")  # before any work: no TensorRT or no GPU is one line, not a half-done export
    if g.formats:
        from ..formats.registry import preflight

        preflight(g.formats)  # a format named with no extra installed: one line with its pip command, now
    check_out_dir(out, r.force)
    source = open_model(r.model, r.weights, r.num_classes, r.trust_checkpoint, r.preprocess, g.plan)
    notes = list(source.notes)
    if not source.pretrained:
        notes.append("random weights: accuracy not applicable; the file is for size and latency only")
    pruned_plan = _prune_inline(source, g.prune_ratio, notes) if g.prune_ratio is not None else None
    images = images_for(source, r.eval_data, g.max_images, notes)
    if g.finetune_data is not None:  # read only when the pruned round starts, minutes in: refuse a bad folder now
        try:
            scan(g.finetune_data, source.categories, source.num_classes)
        except EdgekitError as exc:
            raise EdgekitError(f"--finetune-data: {exc}") from None
    with make_progress() as progress, ImageStream(images, source.preprocess) as stream:
        if _reads_again(r):  # the stages read the images again: decode them once, into a uint8 copy
            stream = stream.cache(progress)
        try:
            with staged_dir(out, r.force) as tmp:
                exporter, meta = _write_fp32(source, tmp, g, progress)
                if pruned_plan is not None:
                    _write_pruned(tmp, source, pruned_plan)
                onnx_path = tmp / "model.onnx"
                ref_o, onnx_o = _check_fp32(source, onnx_path, stream, progress)
                image_notes(images, notes)
                verification = check_tolerance(onnx_path, onnx_o.agreement(), onnx_o.max_abs_ref,
                                               Tolerance(g.atol, g.rtol))
                acc = _fp32_accuracy(source, ref_o, onnx_o, stream.labelled)
                ctx = StageContext(source, tmp, onnx_path, stream, notes, progress, r.backend.threads,
                                   timing or TimingOptions(warmup=10, repeats=50), fp32_top1=onnx_o.top1)
                extra, lowp = _stages(r, ctx, meta, board_budgets)
                photos = None if r.eval_data is not None else _photos_check([onnx_path] + lowp, source, stream)
                rep = report_mod.new_report(
                    "export", model=source.describe(), precision=r.precision,
                    plan=pruned_plan or source.plan, exporter=exporter, opset=g.opset,
                    dynamic_batch=g.dynamic_batch, input_shape=list(source.input_shape),
                    preprocess=source.preprocess.to_dict(), artifact=artifact_facts(onnx_path),
                    verification=verification, accuracy=acc, images=stream_summary(stream), out=str(out),
                    environment=report_mod.environment(r.backend.threads), notes=notes, photos_top5=photos,
                    **extra)
                report_mod.write(rep, tmp)
        finally:
            stream.close()
    over_budget(rep, out)
    return rep


def over_budget(rep: dict, out: Path) -> None:
    """Raise BudgetExceededError when the report's INT8 file misses its budget on the held-out images, or a mobile
    format failed or missed it (the command exits 1; a script gets the same error, with the report)."""
    from ..errors import BudgetExceededError

    q = rep.get("int8")
    if q and q["within_budget"] is False:
        limit = f"--max-drop {q['max_drop']}" if q["budget"]["source"] == "--max-drop" else \
            f"the default budget of {q['max_drop']} (--max-drop sets it, --max-drop off removes it)"
        raise BudgetExceededError(f"INT8 top-1 drop {q['drop']:.2f} on held-out images exceeds {limit} even with "
                                  f"{len(q['guard_nodes'])} layers in float; best attempt kept as {out}/{q['file']}",
                                  rep)
    if "formats" in rep:
        from ..report.formats import failures

        failed = failures(rep["formats"])
        if failed:
            raise BudgetExceededError(f"{len(failed)} format(s) failed or missed the budget (the rest are in "
                                      f"{out}/mobile): {' | '.join(failed)}", rep)


def _write_fp32(source: ModelSource, tmp: Path, g, progress) -> tuple[str, dict]:
    """OUT/model.onnx from the torch model (or the user's ONNX), simplified, with edgekit's metadata."""
    from ..graph.export import write_onnx_with_meta

    if source.torch_model is not None:
        task = progress.add_task("exporting to ONNX", total=None)
        exporter = onnx_from_torch(source.torch_model, list(source.input_shape), tmp / "raw.onnx", g.opset,
                                   g.dynamic_batch)
        raw = load_onnx(tmp / "raw.onnx")
        (tmp / "raw.onnx").unlink()
        progress.remove_task(task)
    else:
        exporter, raw = "none (ONNX input)", load_onnx(source.onnx_path)
    meta = {"model": source.name, "family": source.family, "weights": source.weights,
            "weights_sha256": source.weights_sha256, "pretrained": source.pretrained,
            "num_classes": source.num_classes, "categories": source.categories,
            "preprocess": source.preprocess.to_dict(), "precision": "fp32"}
    write_onnx_with_meta(simplify(raw), tmp / "model.onnx", meta)
    return exporter, meta


def _reads_again(r: ExportRequest) -> bool:
    return r.precision in ("int8", "fp16") or r.export.optimize is not None or r.jetson is not None or \
        r.engine is not None


def _check_fp32(source: ModelSource, onnx_path: Path, stream, progress) -> tuple[Outcomes, Outcomes]:
    """One pass over the images: the source model (torch, or the user's ONNX) and model.onnx side by side."""
    from ..backends.onnxruntime import OnnxRuntimeRunner

    if source.torch_model is not None:
        from ..backends.torch import TorchRunner

        reference = TorchRunner(source.torch_model)
    else:
        reference = OnnxRuntimeRunner(source.onnx_path)
    with reference as ref, OnnxRuntimeRunner(onnx_path) as runner:
        ref_o, onnx_o = outcomes([ref, runner], stream, reference=0, progress=progress,
                                 desc=f"checking {onnx_path.name} against its source")
    return ref_o, onnx_o


def _fp32_accuracy(source: ModelSource, ref_o: Outcomes, onnx_o: Outcomes, labelled: bool) -> dict:
    if not labelled:
        return {}
    if not source.pretrained:
        return {"onnxruntime": "n/a (random weights)"}
    ref_name = "torch" if source.torch_model is not None else "source onnx"
    return {ref_name: ref_o.accuracy(), "onnxruntime": onnx_o.accuracy()}


def _stages(r: ExportRequest, ctx: StageContext, meta: dict, board_budgets: dict | None) -> tuple[dict, list[Path]]:
    """Run the stages the request names, in order; each gets the context and the files it needs, never another
    stage's report section. Returns the report sections and the reduced-precision files made."""
    extra: dict = {}
    lowp: list[Path] = []
    if r.precision == "int8":
        from .int8 import int8_stage

        extra["int8"] = int8_stage(ctx, r.quantize)
        lowp.append(ctx.tmp / extra["int8"]["file"])
    if r.precision == "fp16":
        from .fp16 import fp16_stage

        extra["fp16"] = fp16_stage(ctx.tmp, ctx.fp32_path, ctx.images, meta, ctx.progress)
        lowp.append(ctx.tmp / extra["fp16"]["file"])
    if r.export.optimize is not None:
        from .optimize import optimize_artifact

        extra["optimize"] = optimize_artifact(ctx, r.quantize, r.export)
    if r.jetson is not None:
        from .bundle import bundle_stage

        extra["bundle"] = bundle_stage(ctx, lowp[0], r.precision, r.jetson, board_budgets)
    if r.engine is not None:
        from .tensorrt import engine_stage

        extra["engine"] = engine_stage(ctx, lowp[0] if lowp else ctx.fp32_path, r.precision, r.engine)
    if r.export.formats:
        from .formats import formats_stage

        extra["formats"] = formats_stage(ctx, r, {r.precision: lowp[0]} if lowp else {})
    return extra, lowp


def _photos_check(files: list[Path], source: ModelSource, stream) -> dict | None:
    """On the built-in photos, real ImageNet weights put an accepted class in each top 5 (see photos.py);
    checked for the FP32 file and each reduced-precision file, by file name."""
    if not (source.pretrained and source.num_classes == 1000):
        return None
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..measure.photos import accepted_labels, top5_check

    x, _ = stream.array()  # the seven built-in photos
    checks = {}
    for path in files:
        with OnnxRuntimeRunner(path) as r:
            checks[path.name] = top5_check(stream.paths, run_batched(r, x), accepted_labels())
    return checks


def _prune_inline(source: ModelSource, ratio: float, notes: list[str]) -> dict:
    from ..models.registry import get_card
    from ..prune.plan import PruneConfig, prune

    if source.torch_model is None:
        raise EdgekitError("--prune needs the torch model, not an ONNX file: pass a zoo name and --weights")
    plan = prune(source.torch_model, get_card(source.name), source.input_shape, PruneConfig(ratio))
    notes.append(f"pruned {ratio:.0%} of channels without fine-tuning: accuracy drops; recover it with "
                 "`edgekit prune --finetune-data`")
    return plan


def _write_pruned(folder: Path, source: ModelSource, plan: dict) -> None:
    import io

    import torch

    from ..fsutil import atomic_write_bytes, sha256_file, write_json

    buf = io.BytesIO()
    torch.save(source.torch_model.state_dict(), buf)
    atomic_write_bytes(folder / "pruned_state_dict.pt", buf.getvalue())
    plan["pruned_weights_sha256"] = sha256_file(folder / "pruned_state_dict.pt")
    write_json(folder / "plan.json", plan)
