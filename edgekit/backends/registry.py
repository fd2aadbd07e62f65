"""The one table of backends: a name, and the module that implements it.

Each backend module defines ``SPEC`` (a ``BackendSpec``: what it runs, on which devices, in which precisions, its
tunable options, the optional modules it needs) and ``open(request: RunnerRequest) -> Runner``. Everything that
picks a backend by name (profile, ``--optimize``, doctor, recipe dry runs) asks here, so adding a backend is one
module and one line in ``_MODULES``; ``tests/backends/test_conformance.py`` then runs it against the others.

Modules are imported when first asked for, and they import their runtime (torch, OpenVINO, TensorRT) only when a
runner is opened: ``import edgekit`` stays light.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .._optional import available as _installed
from .._optional import require as _require
from ..errors import EdgekitError
from .base import BackendSpec, Runner, RunnerRequest

# one line per backend; the order is doctor's (the PyTorch reference first, the GPU-only backend last)
_MODULES = {
    "torch": "edgekit.backends.torch",
    "onnxruntime": "edgekit.backends.onnxruntime",
    "openvino": "edgekit.backends.openvino",
    "litert": "edgekit.backends.litert",
    "executorch": "edgekit.backends.executorch",
    "ncnn": "edgekit.backends.ncnn",
    "tensorrt": "edgekit.backends.tensorrt",
}


def names() -> tuple[str, ...]:
    return tuple(_MODULES)


def module(name: str) -> ModuleType:
    """The backend's module (imported now, light: its runtime is imported by ``open``)."""
    if name not in _MODULES:
        raise EdgekitError(f"unknown backend {name!r}: choose one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])


def get(name: str) -> BackendSpec:
    """The backend's ``SPEC``; an unknown name is refused with the choices."""
    return module(name).SPEC


def available(name: str) -> bool:
    """Whether the optional modules the backend needs are installed (found, not imported)."""
    return all(_installed(m) for m in get(name).requires)


def require(name: str) -> None:
    """Raise MissingDependencyError with the reason when the backend cannot run here (its library, or, for a
    GPU-only backend, a GPU)."""
    spec = get(name)
    if spec.check is not None:
        spec.check()
        return
    for m in spec.requires:
        _require(m, f"the {name} backend")


def devices_here(name: str) -> tuple[str, ...]:
    """The devices this machine can run the backend on; raises the reason when it cannot run at all."""
    require(name)
    spec = get(name)
    return tuple(spec.probe()) if spec.probe is not None else spec.devices


def check_input(name: str, model: str, kind: str) -> None:
    """Refuse a model of a ``kind`` ("onnx" or "torch") the backend does not run, with its own one-line fix."""
    spec = get(name)
    if kind not in spec.inputs:
        raise EdgekitError(spec.wrong_input.format(model=model))


def open_runner(name: str, request: RunnerRequest) -> Runner:
    """The backend's runner for ``request`` (not yet activated: use it as a context manager)."""
    return module(name).open(request)
