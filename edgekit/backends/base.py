"""The runner protocol (Polygraphy's BaseRunner shape) and the capability table of the backends.

Runners only run: ``activate`` loads, ``infer`` returns host logits once the device is done, ``deactivate``
frees. Timing lives in ``edgekit.profile`` so that every backend is measured by the same loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..errors import EdgekitError


@dataclass(frozen=True)
class BackendSpec:
    name: str
    suffixes: tuple[str, ...]
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    extra: str | None = None  # pip extra that provides it


BACKENDS: dict[str, BackendSpec] = {
    "onnxruntime": BackendSpec("onnxruntime", (".onnx",), ("cpu", "cuda", "tensorrt"), ("fp32", "fp16", "int8")),
    "torch": BackendSpec("torch", (".pt", ".pth"), ("cpu", "cuda"), ("fp32", "fp16")),
    "tensorrt": BackendSpec("tensorrt", (".engine", ".plan"), ("cuda",), ("fp32", "fp16", "int8"), "tensorrt"),
    "openvino": BackendSpec("openvino", (".onnx", ".xml"), ("cpu",), ("fp32", "int8"), "openvino"),
}


def get_spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise EdgekitError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


class Runner(abc.ABC):
    """Context manager around one loaded model. Subclasses implement the ``*_impl`` methods."""

    name = "runner"

    def __init__(self) -> None:
        self.is_active = False
        self.input_shape: list[int | None] = []
        self.device = "cpu"

    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, x: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise RuntimeError(f"{self.name} runner used before activate()")
        if x.dtype != np.float32 or x.ndim != 4:
            raise ValueError(f"{self.name}: expected float32 NCHW, got {x.dtype} {x.shape}")
        fixed = [(i, d) for i, d in enumerate(self.input_shape) if d is not None]
        for i, d in fixed:
            if x.shape[i] != d:
                hint = " (export with --dynamic-batch for other batch sizes)" if i == 0 else ""
                raise EdgekitError(f"{self.name}: input shape {list(x.shape)} does not fit the model's "
                                   f"{self.input_shape}{hint}")
        return self.infer_impl(x)

    @property
    def fixed_batch(self) -> int | None:
        return self.input_shape[0] if self.input_shape else None

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, x: np.ndarray) -> np.ndarray: ...

    def deactivate_impl(self) -> None:
        pass

    def describe(self) -> dict:
        """Backend facts for the report (provider, threads, versions)."""
        return {"backend": self.name, "device": self.device}
