"""Lazy imports of optional heavy dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

_HINTS = {
    "tensorrt": "pip install 'edgekit[tensorrt]' (needs an NVIDIA GPU and driver)",
    "cuda.bindings": "pip install 'edgekit[tensorrt]' (cuda-python; needs an NVIDIA GPU and driver)",
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
