"""edgekit: take a trained lightweight image classifier to the edge.

The Python API mirrors the CLI: ``edgekit.export_model(...)``, ``edgekit.profile_model(...)``,
``edgekit.list_models()``.
Importing edgekit loads neither torch nor any GPU library; those load inside the functions that need them.
"""

from __future__ import annotations

from ._version import __version__
from .errors import EdgekitError
from .models.registry import get_card, list_models

__all__ = ["EdgekitError", "__version__", "export_model", "get_card", "list_models", "profile_model"]


def __getattr__(name):
    if name in ("export_model", "profile_model"):
        from .pipeline import export as api

        return getattr(api, name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
