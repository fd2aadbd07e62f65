"""`profile`: size, latency, memory and accuracy of one artifact on one backend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.images import load_array
from ..fsutil import check_out_dir, staged_dir
from ..graph.export import onnx_from_torch
from ..measure.facts import artifact_facts
from ..measure.quality import evaluate, reference_logits
from ..measure.timing import TimingOptions, measure
from ..models.source import ModelSource, PreprocessOverrides, is_onnx, open_model, open_onnx
from ..progress import make_progress
from ..report import document as report_mod
from .common import _image_notes, _images


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
    from ..backends import registry

    registry.get(backend)
    timing = timing or TimingOptions()
    out = Path(out) if out else default_profile_out(model, backend, device)
    check_out_dir(out, force)
    registry.require(backend)  # its library (and, for TensorRT, a GPU), or the one-line reason
    registry.check_input(backend, model, "onnx" if is_onnx(model) else "torch")
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
            if hasattr(runner, "compute_ms"):  # TensorRT: GPU compute time (CUDA events, no copies) beside e2e
                from ..measure.gpu import engine_gpu_rows, relative_to, torch_cuda_rows

                rows = engine_gpu_rows(runner, x, timing, progress)
                rows += torch_cuda_rows(source, source.onnx_path, x, runner.max_batch, timing, progress, notes)
                measured["gpu_side_by_side"] = relative_to(rows, "torch fp32")
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
    from ..graph.info import load_checked, read_meta

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
    from ..backends import registry
    from ..backends.base import RunnerRequest
    from .optimize import read_runtime

    options = read_runtime(source.onnx_path, backend) if source.onnx_path is not None else {}
    return registry.open_runner(backend, RunnerRequest(source.onnx_path, source.torch_model, device, threads,
                                                       options, tuple(source.input_shape)))


def _torch_macs(source: ModelSource) -> int:
    import tempfile

    from ..graph.info import count_macs, load_checked

    with tempfile.TemporaryDirectory() as d:
        onnx_from_torch(source.torch_model, source.input_shape, Path(d) / "m.onnx")
        return count_macs(load_checked(Path(d) / "m.onnx"))
