"""`profile`: size, latency, memory and accuracy of one artifact on one backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import dist
from ..data.stream import ImageStream
from ..fsutil import check_out_dir, staged_dir
from ..graph.export import onnx_from_torch
from ..measure.facts import artifact_facts
from ..measure.quality import outcomes
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


GPU_SAMPLE = 64  # images the GPU side-by-side builds its batches from (up to the engine's largest batch)


def profile_model(request: ProfileRequest) -> dict | None:
    """Size, params, MACs, latency, peak memory and accuracy (or agreement with a reference) of one model.

    The evaluation images stream through the model a batch at a time. Under torchrun each process evaluates its
    shard of them (the outcomes are gathered), rank 0 alone times the model and writes; the others return None."""
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
    with dist.process_group(), make_progress(show=dist.is_main_process()) as progress:
        stream = ImageStream(images, source.preprocess)
        runner = _runner(source, backend, device, threads, max(1, timing.batch))
        ref_runner = None
        try:
            measured = _timed(runner, source, stream, timing, progress, notes) if dist.is_main_process() else {}
            dist.barrier()  # the other processes wait while rank 0 times: nothing runs beside the timing
            runner.activate()
            if ref_src is not None:
                from ..backends.onnxruntime import OnnxRuntimeRunner

                ref_runner = OnnxRuntimeRunner(ref_src.onnx_path).activate()
            o = outcomes([runner], stream, reference=ref_runner, progress=progress)[0]
            quality = {}
            if stream.labelled and source.pretrained:
                quality["accuracy"] = o.accuracy()
            if ref_runner is not None:
                quality["agreement"] = o.agreement()
            image_notes(images, notes)
            backend_facts = runner.describe()
        finally:
            runner.deactivate()
            if ref_runner is not None:
                ref_runner.deactivate()
        if not dist.is_main_process():
            return None
    if stream.labelled and not source.pretrained:
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


def _timed(runner, source: ModelSource, stream, timing: TimingOptions, progress, notes: list[str]) -> dict:
    """Latency and peak memory on the first evaluation images; for TensorRT, GPU compute time beside end to end
    and the side by side with PyTorch on CUDA."""
    import numpy as np

    measured = measure(runner, np.ascontiguousarray(stream.head(max(1, timing.batch))), timing, progress)
    if runner.name == "tensorrt":  # GPU compute time (CUDA events, no copies) beside end to end
        from ..measure.gpu import engine_gpu_rows, relative_to, torch_cuda_rows

        x = stream.head(GPU_SAMPLE)
        rows = engine_gpu_rows(runner, x, timing, progress)
        rows += torch_cuda_rows(source, source.onnx_path, x, runner.max_batch, timing, progress, notes)
        measured["gpu_side_by_side"] = relative_to(rows, "torch fp32")
    return measured


def _runner(source: ModelSource, backend: str, device: str, threads: int | None, batch: int = 1):
    from ..backends import registry
    from ..backends.base import RunnerRequest
    from .optimize import read_runtime

    options = read_runtime(source.onnx_path, backend) if source.onnx_path is not None else {}
    if backend == "tensorrt":  # a dynamic-batch ONNX: its engine takes batches 1..batch (a fixed one: its own)
        options = {**options, "batch_profile": (1, batch, batch)}
    if backend == "ncnn" and "_fp16" in source.onnx_path.name:  # an FP16 ncnn file runs with fp16 arithmetic
        options = {**options, "fp16": True}
    return registry.open_runner(backend, RunnerRequest(source.onnx_path, source.torch_model, device, threads,
                                                       options, tuple(source.input_shape)))


def _torch_macs(source: ModelSource) -> int:
    import tempfile

    from ..graph.info import count_macs, load_checked

    with tempfile.TemporaryDirectory() as d:
        onnx_from_torch(source.torch_model, source.input_shape, Path(d) / "m.onnx")
        return count_macs(load_checked(Path(d) / "m.onnx"))
