"""The two jobs of the CPU path as plain functions: export a model, profile an artifact.

The CLI is a thin layer over these; a script can call them with the same arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.images import ImageSet, load_array
from ..errors import EdgekitError
from ..fsutil import check_out_dir, staged_dir
from ..graph.export import onnx_from_torch, simplify
from ..measure.facts import artifact_facts
from ..measure.quality import Tolerance, reference_logits, run_batched, verify
from ..measure.timing import TimingOptions
from ..models.source import ModelSource, PreprocessOverrides, open_model
from ..progress import make_progress
from ..quantize.config import QuantConfig
from ..report import document as report_mod
from ..stats import accuracy
from .bundle import _bundle_stage
from .calib import CalibOptions, _calibration_set
from .common import _image_notes, _images, _load
from .fp16 import _fp16_stage
from .tensorrt import _engine_stage


def export_model(model: str, out: str | os.PathLike, weights: str = "imagenet", eval_data=None,
                 num_classes: int | None = None, trust_checkpoint: bool = False,
                 overrides: PreprocessOverrides | None = None, dynamic_batch: bool = False,
                 opset: int = 18, tolerance: Tolerance | None = None, max_images: int | None = None,
                 force: bool = False, int8: bool = False, fp16: bool = False, quant: QuantConfig | None = None,
                 calib: CalibOptions | None = None, max_drop: float | str | None = None, threads: int | None = None,
                 timing: TimingOptions | None = None, max_float_layers: int | None = None,
                 plan: str | None = None, prune_ratio: float | None = None, jetson: dict | None = None,
                 optimize: str | None = None, engine: dict | None = None, time_budget: float | None = None) -> dict:
    """Export ``model`` (zoo name or .onnx) to ``out/model.onnx``, verified against its source.

    With ``int8``, also ``out/model_int8.onnx`` (QDQ, calibrated on real images, guarded by ``max_drop``: None
    for the default budget of 1 top-1 point on held-out images, "off" for no budget);
    with ``fp16``, ``out/model_fp16.onnx``. With ``jetson`` (TensorRT build options), also the bundle to copy
    to the board in ``out/bundle``. With ``engine`` (TensorRT build options), also a TensorRT engine built and
    measured on this machine's GPU. Returns the report, also written to ``out/report.json`` and
    ``out/report.md``.
    """
    out = Path(out)
    if int8 and fp16:
        raise EdgekitError("--int8 and --fp16 together: choose one precision per export (run export twice "
                           "for both)")
    if max_drop is not None and not int8 and optimize is None:
        raise EdgekitError("--max-drop guards INT8 accuracy: add --int8 (or --optimize)")
    if optimize is not None and max_drop == "off":
        raise EdgekitError("--optimize chooses within an accuracy budget: give --max-drop in top-1 points, not off")
    if time_budget is not None and optimize is None:
        raise EdgekitError("--time-budget bounds the --optimize search: add --optimize latency (or size)")
    if optimize is not None and (int8 or fp16):
        raise EdgekitError("--optimize tries FP32 and INT8 itself: drop --int8/--fp16")
    if engine is not None:
        from ..backends.tensorrt.options import BuildOptions, require_gpu

        if optimize is not None:
            raise EdgekitError("--optimize chooses among CPU runtimes: drop it with --backend tensorrt")
        BuildOptions(**{"precision": "int8" if int8 else "fp16" if fp16 else "fp32", **engine})
        require_gpu()  # before any work: no TensorRT or no GPU is one line, not a half-done export
    check_out_dir(out, force)
    tolerance = tolerance or Tolerance()
    source = open_model(model, weights, num_classes, trust_checkpoint, overrides, plan)
    notes = list(source.notes)
    if not source.pretrained:
        notes.append("random weights: accuracy not applicable; the file is for size and latency only")
    pruned_plan = _prune_inline(source, prune_ratio, notes) if prune_ratio is not None else None
    images = _images(source, eval_data, max_images, notes)
    with make_progress() as progress:
        x, y = load_array(images, source.preprocess, progress)
        _image_notes(images, notes)
        with staged_dir(out, force) as tmp:
            onnx_path = tmp / "model.onnx"
            shape = list(source.input_shape)
            if source.torch_model is not None:
                task = progress.add_task("exporting to ONNX", total=None)
                exporter = onnx_from_torch(source.torch_model, shape, tmp / "raw.onnx", opset, dynamic_batch)
                raw = _load(tmp / "raw.onnx")
                (tmp / "raw.onnx").unlink()
                progress.remove_task(task)
            else:
                exporter, raw = "none (ONNX input)", _load(source.onnx_path)
                if dynamic_batch:
                    raise EdgekitError("--dynamic-batch applies to torch models; re-export your ONNX file with a "
                                       "dynamic batch axis")
            if pruned_plan is not None:
                _write_pruned(tmp, source, pruned_plan)
            slim = simplify(raw)
            from ..graph.export import write_onnx_with_meta

            meta = {"model": source.name, "family": source.family, "weights": source.weights,
                    "weights_sha256": source.weights_sha256, "pretrained": source.pretrained,
                    "num_classes": source.num_classes, "categories": source.categories,
                    "preprocess": source.preprocess.to_dict(), "precision": "fp32"}
            write_onnx_with_meta(slim, onnx_path, meta)

            ref = reference_logits(source, x)
            verification = verify(onnx_path, x, ref, tolerance)
            acc: dict = {}
            if y is not None and source.pretrained:
                from ..backends.onnxruntime import OnnxRuntimeRunner

                with OnnxRuntimeRunner(onnx_path) as r:
                    onnx_logits = run_batched(r, x)
                ref_name = "torch" if source.torch_model is not None else "source onnx"
                acc = {ref_name: accuracy(ref, y), "onnxruntime": accuracy(onnx_logits, y)}
            elif y is not None:
                acc = {"onnxruntime": "n/a (random weights)"}
            extra: dict = {}
            if int8:
                extra["int8"] = _int8_stage(source, tmp, onnx_path, x, y, images, quant or QuantConfig(),
                                            calib or CalibOptions(), max_drop, threads,
                                            timing or TimingOptions(warmup=10, repeats=50), notes, progress,
                                            max_float_layers)
            if fp16:
                extra["fp16"] = _fp16_stage(tmp, onnx_path, x, meta, progress)
            if optimize is not None:
                from .optimize import optimize_artifact

                extra["optimize"] = optimize_artifact(source, tmp, onnx_path, x, y, optimize, quant or QuantConfig(),
                                                      calib or CalibOptions(), max_drop, threads,
                                                      timing or TimingOptions(warmup=10, repeats=50), notes,
                                                      progress, _calibration_set, time_budget=time_budget)
            if jetson is not None:
                extra["bundle"] = _bundle_stage(tmp, source, onnx_path, extra, x, y, jetson, threads)
            if engine is not None:
                extra["engine"] = _engine_stage(tmp, source, onnx_path, extra, x, y, engine, timing or
                                                TimingOptions(warmup=20, repeats=100), notes, progress)
            photos = None if eval_data is not None else _photos_check(
                [onnx_path] + [tmp / extra[k]["file"] for k in ("int8", "fp16") if k in extra], source, images, x)
            rep = report_mod.new_report(
                "export", model=source.describe(), precision="int8" if int8 else "fp16" if fp16 else "fp32",
                plan=pruned_plan or source.plan, exporter=exporter, opset=opset,
                dynamic_batch=dynamic_batch, input_shape=shape, preprocess=source.preprocess.to_dict(),
                artifact=artifact_facts(onnx_path), verification=verification, accuracy=acc,
                images=images.summary(), out=str(out), environment=report_mod.environment(threads), notes=notes,
                photos_top5=photos, **extra)
            report_mod.write(rep, tmp)
    return rep


def _photos_check(files: list[Path], source: ModelSource, images: ImageSet, x) -> dict | None:
    """On the built-in photos, real ImageNet weights put an accepted class in each top 5 (see photos.py);
    checked for the FP32 file and each reduced-precision file, by file name."""
    if not (source.pretrained and source.num_classes == 1000):
        return None
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..measure.photos import accepted_labels, top5_check

    checks = {}
    for path in files:
        with OnnxRuntimeRunner(path) as r:
            checks[path.name] = top5_check(images.paths, run_batched(r, x), accepted_labels())
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


def _int8_stage(source, tmp: Path, fp32_path: Path, x, y, images, cfg: QuantConfig, copts: CalibOptions,
                max_drop, threads, timing: TimingOptions, notes: list[str], progress,
                max_float_layers: int | None = None) -> dict:
    """Calibrate, quantize under the accuracy budget (held-out images), measure, explain: see int8_job."""
    from .int8 import int8_stage

    return int8_stage(source, tmp, fp32_path, x, y, images, cfg, copts, max_drop, threads, timing, notes, progress,
                      max_float_layers)
