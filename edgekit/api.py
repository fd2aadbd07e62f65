"""The Python API a script imports: the same jobs the commands run, from the same request objects.

    from edgekit.api import ExportRequest, QuantizeOptions, export_model
    rep = export_model(ExportRequest("mobilenet_v2", out="out/mnv2", weights="model.pth", eval_data="val",
                                     quantize=QuantizeOptions(precision="int8", calib_data="calib")))
"""

from __future__ import annotations

from .models.source import PreprocessOverrides
from .pipeline.export import export_model
from .pipeline.profile import ProfileRequest, profile_model
from .pipeline.prune import PruneRequest, prune_model
from .pipeline.request import BackendOptions, ExportRequest, GraphOptions, QuantizeOptions

__all__ = ["BackendOptions", "ExportRequest", "GraphOptions", "PreprocessOverrides", "ProfileRequest",
           "PruneRequest", "QuantizeOptions", "export_model", "profile_model", "prune_model"]
