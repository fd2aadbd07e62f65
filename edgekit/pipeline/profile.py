"""`profile`: size, latency, memory and accuracy of one artifact on one backend."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from .common import image_notes, images_for


def default_profile_out(model: str, backend: str, device: str) -> Path:
    if is_onnx(model):
        return Path(model).parent / f"profile-{Path(model).stem}-{backend}-{device}"
    return Path("edgekit-out") / f"profile-{model}-{backend}-{device}"


@dataclass(frozen=True)
class ProfileRequest:
    """Everything `edgekit profile` does, once: built by the CLI, a recipe or a script, checked when built."""

    model: str  # a .onnx file, or a zoo name with the torch backend
    out: str | None = None  # default beside the ONNX file (or edgekit-out/)
    backend: str = "onnxruntime"
    device: str = "cpu"
    threads: int | None = None
    eval_data: str | None = None
    reference: str | None = None  # a .onnx to compare against (top-1 agreement, cosine)
    timing: TimingOptions = field(default_factory=TimingOptions)
    weights: str = "imagenet"
    num_classes: int | None = None
    trust_checkpoint: bool = False
    preprocess: PreprocessOverrides = field(default_factory=PreprocessOverrides)
    max_images: int | None = None
    force: bool = False

    def __post_init__(self) -> None:
        from ..backends import registry

        registry.get(self.backend)  # an unknown name lists the choices
        from ..models.mobile import kind_of

        mobile = kind_of(self.model)
        if mobile and self.backend == "onnxruntime" and mobile[0] != "onnxruntime":  # the default: the file's own
            object.__setattr__(self, "backend", mobile[0])

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else default_profile_out(self.model, self.backend, self.device)


def profile_model(request: ProfileRequest) -> dict:
    """Size, params, MACs, latency, peak memory and accuracy (or agreement with a reference) of one model."""
    from ..backends import registry

    r = request
    model, backend, device, threads, eval_data, reference = (r.model, r.backend, r.device, r.threads, r.eval_data,
                                                              r.reference)
    weights, num_classes, trust_checkpoint, overrides = r.weights, r.num_classes, r.trust_checkpoint, r.preprocess
    max_images, force = r.max_images, r.force
    timing, out = r.timing, r.out_dir
    check_out_dir(out, force)
    registry.require(backend)  # its library (and, for TensorRT, a GPU), or the one-line reason
    from ..models.mobile import kind_of, open_mobile

    mobile = kind_of(model)
    registry.check_input(backend, model, mobile[1] if mobile else "onnx" if is_onnx(model) else "torch")
    source, entry = open_mobile(Path(model), overrides) if mobile else (
        open_model(model, weights, num_classes, trust_checkpoint, overrides), None)
    notes = list(source.notes)
    images = images_for(source, eval_data, max_images, notes)
    ref_src = open_onnx(Path(reference)) if reference else None
    with make_progress() as progress:
        x, y = load_array(images, source.preprocess, progress)
        image_notes(images, notes)
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

        artifact = {"file": f"{source.name} (torch, in memory)", "bytes": None, "size_mb": None,
                    "params": sum(p.numel() for p in source.torch_model.parameters()),
                    "macs": _torch_macs(source)} if isinstance(source.torch_model, torch.nn.Module) else {}
    from ..graph.info import load_checked, read_meta

    precision = entry.get("precision", "fp32") if mobile else \
        read_meta(load_checked(source.onnx_path)).get("precision", "fp32") if source.onnx_path else "fp32"
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
    if backend == "ncnn" and "_fp16" in source.onnx_path.name:  # an FP16 ncnn file runs with fp16 arithmetic
        options = {"fp16": True}
    return registry.open_runner(backend, RunnerRequest(source.onnx_path, source.torch_model, device, threads,
                                                       options, tuple(source.input_shape)))


def _torch_macs(source: ModelSource) -> int:
    import tempfile

    from ..graph.info import count_macs, load_checked

    with tempfile.TemporaryDirectory() as d:
        onnx_from_torch(source.torch_model, source.input_shape, Path(d) / "m.onnx")
        return count_macs(load_checked(Path(d) / "m.onnx"))
