"""The runner protocol (Polygraphy's BaseRunner shape), what a backend declares, and what opening a runner takes.

Runners only run: ``activate`` loads, ``infer`` returns host logits once the device is done, ``deactivate``
frees. Timing lives in ``edgekit.profile`` so that every backend is measured by the same loop.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekitError


@dataclass(frozen=True)
class BackendSpec:
    """What one backend module declares (its ``SPEC``); ``edgekit.backends.registry`` finds it by name."""

    name: str
    inputs: tuple[str, ...]  # what it runs: "onnx" (an ONNX file), "torch" (a zoo model in memory)
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    suffixes: tuple[str, ...] = ()  # files it reads or writes
    tunable: tuple[str, ...] = ()  # runtime options --optimize may try (RunnerRequest.options keys)
    requires: tuple[str, ...] = ()  # optional modules it imports
    extra: str | None = None  # pip extra that provides them
    fix: str = ""  # how to install it, for doctor's rows and dry runs
    wrong_input: str = ""  # the error for a model of a kind it does not run ({model} is the model named)
    check: Callable[[], object] | None = None  # raises the reason it cannot run here (default: ``requires``)
    probe: Callable[[], Sequence[str]] | None = None  # which of ``devices`` this machine has (default: all)


@dataclass(frozen=True)
class RunnerRequest:
    """The arguments every backend's ``open`` takes; each reads what it runs (``path`` or ``module``)."""

    path: Path | None = None  # the ONNX (or IR) file
    module: Any = None  # a torch.nn.Module
    device: str = "cpu"
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # tuned runtime options (``BackendSpec.tunable``)
    input_shape: tuple[int | None, ...] | None = None  # the model's NCHW input, for a module
    work_dir: Path | None = None  # where a backend that builds (TensorRT) writes; None: a fresh temporary folder


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
