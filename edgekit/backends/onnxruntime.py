"""ONNX Runtime: CPU, and the CUDA or TensorRT execution provider when the installed build has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgekitError, first_line
from .base import Runner

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def available_devices() -> list[str]:
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [d for d, provs in _PROVIDERS.items() if provs[0] in have]


def session_from_onnx(path: str | Path, device: str = "cpu", threads: int | None = None,
                      allow_spinning: bool = True, optimization: str = "all"):
    """An InferenceSession on ``device``; refuses (never silently downgrades) a provider the build lacks."""
    import onnxruntime as ort

    if device not in _PROVIDERS:
        raise EdgekitError(f"unknown onnxruntime device {device!r}: choose one of {', '.join(_PROVIDERS)}")
    wanted = _PROVIDERS[device][0]
    if wanted not in ort.get_available_providers():
        raise EdgekitError(f"this onnxruntime build has no {wanted} (has {', '.join(ort.get_available_providers())}):"
                           " install onnxruntime-gpu on an NVIDIA machine, or use --device cpu")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not allow_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=_PROVIDERS[device])
    except Exception as exc:
        raise EdgekitError(f"onnxruntime cannot load {path} ({first_line(exc, 160)}): "
                           "check the file with `python -m onnx.checker` or re-export it") from None


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 allow_spinning: bool = True, optimization: str = "all") -> None:
        super().__init__()
        self.path, self.device, self.threads = Path(path), device, threads
        self.allow_spinning, self.optimization = allow_spinning, optimization
        self.session = None

    def activate_impl(self) -> None:
        self.session = session_from_onnx(self.path, self.device, self.threads, self.allow_spinning,
                                         self.optimization)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else None for d in inp.shape]
        self.output_name = self.session.get_outputs()[0].name

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def deactivate_impl(self) -> None:
        self.session = None

    def describe(self) -> dict:
        import onnxruntime as ort

        provs = self.session.get_providers() if self.session else _PROVIDERS[self.device]
        return {"backend": self.name, "device": self.device, "providers": provs,
                "threads": self.threads or "default", "onnxruntime": ort.__version__,
                "graph_optimization": self.optimization}
