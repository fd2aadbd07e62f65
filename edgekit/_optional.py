"""Optional heavy dependencies, in one place: whether one is here, importing it, and the error naming the extra.

``available`` finds a module without importing it (cheap: for choosing what to offer); ``require`` imports it
or raises MissingDependencyError with the install command; ``try_import`` imports it or gives the one-line reason
(for reports that list what is absent rather than stop).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

from .errors import MissingDependencyError, first_line


def extra_requirements(extra: str) -> list[str]:
    """The requirements of edgekit's ``extra`` as the installed distribution declares them (pyproject.toml is the
    one place they are written); empty when edgekit is not installed as a distribution or has no such extra."""
    import importlib.metadata as md
    import re

    try:
        reqs = md.requires("edgekit") or []
    except md.PackageNotFoundError:
        return []
    out = []
    for r in reqs:
        spec, _, marker = r.partition(";")
        if re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            out.append(spec.strip())
    return out


def extra_hint(extra: str) -> str:
    """The install command for edgekit's ``extra``, naming its packages.

    Never edgekit's own name with the extra in brackets: the package index's ``edgekit`` is another project, so
    the bare name can fetch someone else's code. The packages themselves are what the extra adds; from a checkout
    of edgekit, ``pip install -e '.[EXTRA]'`` installs the same."""
    reqs = extra_requirements(extra)
    if not reqs:
        return f"from your edgekit checkout: pip install -e '.[{extra}]'"
    return "pip install " + " ".join(f"'{r}'" if any(c in r for c in "<>=!~[; ") else r for r in reqs) + \
        f" (edgekit's [{extra}] extra)"


_HINTS = {
    "tensorrt": lambda: f"{extra_hint('tensorrt')} for CUDA 12, or {extra_hint('tensorrt-cu13')} for driver "
                        "580.65+; needs an NVIDIA GPU and driver",
    "cuda.bindings": "pip install 'cuda-python>=12,<13' (CUDA 12) or 'cuda-python>=13,<14' (driver 580.65+)",
    "pycuda": "pip install pycuda (needs an NVIDIA GPU and the CUDA toolkit)",
    "openvino": lambda: extra_hint("openvino"),
    "nncf": lambda: extra_hint("openvino"),
    "torch_pruning": "pip install torch-pruning",
    "litert_torch": lambda: extra_hint("litert"),
    "ai_edge_litert": lambda: extra_hint("litert"),
    "executorch": lambda: extra_hint("executorch"),
    "pnnx": lambda: extra_hint("ncnn"),
    "ncnn": lambda: extra_hint("ncnn"),
    "coremltools": lambda: extra_hint("coreml"),
}


# Set before the module is first imported, unless the user set them. NNCF sends usage telemetry (openvino_telemetry,
# to Google Analytics) from every process that imports it unless NNCF_CI is set: edgekit imports it on the user's
# behalf, and on an offline machine an interrupted send printed a traceback over edgekit's one-line Ctrl-C message.
_ENV_BEFORE_IMPORT = {"nncf": {"NNCF_CI": "1"}}


def _import(module: str) -> ModuleType:
    for key, value in _ENV_BEFORE_IMPORT.get(module.split(".")[0], {}).items():
        os.environ.setdefault(key, value)
    return importlib.import_module(module)


def hint(module: str) -> str:
    """The install command for ``module``."""
    h = _HINTS.get(module) or _HINTS.get(module.split(".")[0], f"pip install {module}")
    return h() if callable(h) else h


def available(module: str) -> bool:
    """Whether ``module`` is installed, found without importing it (False also when it is blocked with
    ``sys.modules[name] = None``, or when an import hook refuses it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except Exception:  # ImportError/ValueError, or a parent package that fails to import
        return False


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming the install command; a module that is installed
    but fails to import (a native library it loads is missing) is told apart from one that is absent."""
    try:
        return _import(module)
    except Exception as exc:  # ImportError, or a native library's OSError/RuntimeError at import
        what = f" for {purpose}" if purpose else ""
        name = getattr(exc, "name", None) or "\0"
        absent = isinstance(exc, ModuleNotFoundError) and (module == name or module.startswith(name + "."))
        state = "is not installed" if absent else f"is installed but fails to import ({first_line(exc, 140)})"
        raise MissingDependencyError(f"{module} {state}{what}: {hint(module)}" + (f"  ({exc})" if absent else "")
                                     ) from None


def try_import(module: str) -> tuple[ModuleType | None, str | None]:
    """The module, or the one-line reason it does not import (absent, blocked, a missing native library)."""
    try:
        return _import(module), None
    except Exception as exc:  # ImportError, or a native library's OSError/RuntimeError at import
        return None, first_line(exc, 140)
