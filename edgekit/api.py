"""The Python API a script imports: the same jobs the commands run, with the same checks.

    from edgekit.api import export_model, profile_model
"""

from __future__ import annotations

from .pipeline.export import export_model
from .pipeline.profile import profile_model

__all__ = ["export_model", "profile_model"]
