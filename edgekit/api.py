"""The two jobs of the CPU path as plain functions: export a model, profile an artifact.

The CLI is a thin layer over these; a script can call them with the same arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import report as report_mod
from .data import ImageSet, builtin_photos, load_array, scan
from .errors import EdgekitError
from .export import Tolerance, onnx_from_torch, reference_logits, run_batched, simplify, verify
from .fsutil import check_out_dir, staged_dir
from .profile import TimingOptions, artifact_facts, evaluate, measure
from .progress import console, make_progress
from .source import ModelSource, PreprocessOverrides, is_onnx, open_model, open_onnx
from .stats import accuracy


def _images(source: ModelSource, eval_data: str | os.PathLike | None, max_images: int | None,
            notes: list[str]) -> ImageSet:
    if eval_data is None:
        images = scan(builtin_photos())
        notes.append(f"checked on edgekit's {len(images)} built-in photos; pass --eval-data for your own images")
    else:
        images = scan(eval_data, source.categories, source.num_classes)
    if max_images and len(images) > max_images:
        # an even spread over the sorted list keeps every class folder represented
        idx = np.linspace(0, len(images) - 1, max_images).round().astype(int)
        images = images.subset(sorted(set(idx.tolist())))
    return images


def _image_notes(images: ImageSet, notes: list[str]) -> None:
    if images.skipped:
        notes.append(f"skipped {len(images.skipped)} non-image files in {images.root} "
                     f"(e.g. {images.skipped[0].name})")
    if images.converted:
        notes.append("converted to RGB: " + ", ".join(f"{n} {mode}" for mode, n in images.converted.items()))


def export_model(model: str, out: str | os.PathLike, weights: str = "imagenet", eval_data=None,
                 num_classes: int | None = None, trust_checkpoint: bool = False,
                 overrides: PreprocessOverrides | None = None, dynamic_batch: bool = False,
                 opset: int = 18, tolerance: Tolerance | None = None, max_images: int | None = None,
                 force: bool = False) -> dict:
    """Export ``model`` (zoo name or .onnx) to ``out/model.onnx``, verified against its source.

    Returns the report, also written to ``out/report.json`` and ``out/report.md``.
    """
    out = Path(out)
    check_out_dir(out, force)
    tolerance = tolerance or Tolerance()
    source = open_model(model, weights, num_classes, trust_checkpoint, overrides)
    notes = list(source.notes)
    if not source.pretrained:
        notes.append("random weights: accuracy not applicable; the file is for size and latency only")
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
            slim = simplify(raw)
            from .export import write_onnx_with_meta

            meta = {"model": source.name, "family": source.family, "weights": source.weights,
                    "weights_sha256": source.weights_sha256, "pretrained": source.pretrained,
                    "num_classes": source.num_classes, "categories": source.categories,
                    "preprocess": source.preprocess.to_dict(), "precision": "fp32"}
            write_onnx_with_meta(slim, onnx_path, meta)

            ref = reference_logits(source, x)
            verification = verify(onnx_path, x, ref, tolerance)
            acc: dict = {}
            if y is not None and source.pretrained:
                from .backends.onnxruntime import OnnxRuntimeRunner

                with OnnxRuntimeRunner(onnx_path) as r:
                    onnx_logits = run_batched(r, x)
                ref_name = "torch" if source.torch_model is not None else "source onnx"
                acc = {ref_name: accuracy(ref, y), "onnxruntime": accuracy(onnx_logits, y)}
            elif y is not None:
                acc = {"onnxruntime": "n/a (random weights)"}
            rep = report_mod.new_report(
                "export", model=source.describe(), precision="fp32", exporter=exporter, opset=opset,
                dynamic_batch=dynamic_batch, input_shape=shape, preprocess=source.preprocess.to_dict(),
                artifact=artifact_facts(onnx_path), verification=verification, accuracy=acc,
                images=images.summary(), out=str(out), environment=report_mod.environment(), notes=notes)
            report_mod.write(rep, tmp)
    return rep


def _load(path: Path):
    from .onnxinfo import load_checked

    return load_checked(path)


def default_profile_out(model: str, backend: str, device: str) -> Path:
    if is_onnx(model):
        return Path(model).parent / f"profile-{Path(model).stem}-{backend}-{device}"
    return Path("edgekit-out") / f"profile-{model}-{backend}-{device}"


def profile_model(model: str, out: str | os.PathLike | None = None, backend: str = "onnxruntime",
                  device: str = "cpu", threads: int | None = None, eval_data=None, reference: str | None = None,
                  timing: TimingOptions | None = None, weights: str = "imagenet", num_classes: int | None = None,
                  trust_checkpoint: bool = False, overrides: PreprocessOverrides | None = None,
                  max_images: int | None = None, force: bool = False) -> dict:
    """Size, params, MACs, latency, peak memory and accuracy (or agreement with ``reference``) of ``model``."""
    from .backends import get_spec

    get_spec(backend)
    timing = timing or TimingOptions()
    out = Path(out) if out else default_profile_out(model, backend, device)
    check_out_dir(out, force)
    if backend == "onnxruntime" and not is_onnx(model):
        raise EdgekitError(f"the onnxruntime backend runs .onnx files, not {model!r}: run `edgekit export "
                           f"{model}` first, or pass --backend torch")
    if backend == "torch" and is_onnx(model):
        raise EdgekitError(f"the torch backend runs zoo models, not {model}: pass a model name, or --backend onnxruntime")
    if backend == "tensorrt":
        from ._optional import require

        require("tensorrt", "TensorRT engines")
    source = open_model(model, weights, num_classes, trust_checkpoint, overrides)
    notes = list(source.notes)
    images = _images(source, eval_data, max_images, notes)
    ref_src = open_onnx(Path(reference)) if reference else None
    with make_progress() as progress:
        x, y = load_array(images, source.preprocess, progress)
        _image_notes(images, notes)
        runner = _runner(source, backend, device, threads)
        try:
            measured = measure(runner, np.ascontiguousarray(x[:max(1, timing.batch)]), timing, progress)
            ref_logits = None
            if ref_src is not None:
                ref_logits = reference_logits(ref_src, x)
            _, quality = evaluate(runner, x, y if source.pretrained else None, ref_logits, progress)
            backend_facts = runner.describe()
        finally:
            runner.deactivate()
    if y is not None and not source.pretrained:
        quality["accuracy"] = {"model": "n/a (random weights)"}
    elif "accuracy" in quality:
        quality["accuracy"] = {backend: quality["accuracy"]}
    if source.onnx_path is not None:
        artifact = artifact_facts(source.onnx_path)
    else:
        import torch

        artifact = {"file": f"{source.name} (torch, in memory)", "bytes": None, "size_mb": float("nan"),
                    "params": sum(p.numel() for p in source.torch_model.parameters()),
                    "macs": _torch_macs(source)} if isinstance(source.torch_model, torch.nn.Module) else {}
    from .onnxinfo import load_checked, read_meta

    precision = read_meta(load_checked(source.onnx_path)).get("precision", "fp32") if source.onnx_path else "fp32"
    with staged_dir(out, force) as tmp:
        rep = report_mod.new_report(
            "profile", model=source.describe(), precision=precision, backend=backend_facts,
            input_shape=list(source.input_shape), preprocess=source.preprocess.to_dict(), artifact=artifact,
            **measured, **quality, reference=str(reference) if reference else None, images=images.summary(),
            out=str(out), environment=report_mod.environment(threads), notes=notes)
        report_mod.write(rep, tmp)
    return rep


def _runner(source: ModelSource, backend: str, device: str, threads: int | None):
    if backend == "onnxruntime":
        from .backends.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(source.onnx_path, device, threads)
    if backend == "torch":
        from .backends.torch import TorchRunner

        return TorchRunner(source.torch_model, device, threads=threads, input_shape=source.input_shape)
    raise EdgekitError(f"profiling on {backend} is not available from this command yet")


def _torch_macs(source: ModelSource) -> int:
    import tempfile

    from .onnxinfo import count_macs, load_checked

    with tempfile.TemporaryDirectory() as d:
        onnx_from_torch(source.torch_model, source.input_shape, Path(d) / "m.onnx")
        return count_macs(load_checked(Path(d) / "m.onnx"))


__all__ = ["export_model", "profile_model", "console"]
