"""Lazy imports of optional heavy dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

_HINTS = {
    "tensorrt": "pip install 'edgekit[tensorrt]' (CUDA 12) or 'edgekit[tensorrt-cu13]' (driver 580.65+); needs an "
                "NVIDIA GPU and driver",
    "cuda.bindings": "pip install 'cuda-python>=12,<13' (CUDA 12) or 'cuda-python>=13,<14' (driver 580.65+)",
    "pycuda": "pip install pycuda (needs an NVIDIA GPU and the CUDA toolkit)",
    "openvino": "pip install 'edgekit[openvino]'",
    "nncf": "pip install 'edgekit[openvino]'",
    "torch_pruning": "pip install torch-pruning",
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = _HINTS.get(module, f"pip install {module}")
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(f"{module} is not installed{what}: {hint}  ({exc})") from None
