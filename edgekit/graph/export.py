"""Torch -> ONNX, simplified with onnxslim, then checked against the source on real images."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from ..errors import EdgekitError, first_line

DEFAULT_OPSET = 18  # the dynamo exporter's own opset; TensorRT 10.x parses up to 20+


def onnx_from_torch(model, input_shape, path: str | Path, opset: int = DEFAULT_OPSET,
                    dynamic_batch: bool = False) -> str:
    """Export with torch.onnx (dynamo); TorchScript modules go through the TorchScript exporter.

    Returns the exporter used, for the report.
    """
    import torch

    x = torch.zeros(*input_shape)
    path = str(path)
    scripted = isinstance(model, torch.jit.ScriptModule)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            if scripted:  # the dynamo exporter cannot trace a ScriptModule
                torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset,
                                  input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}
                                  if dynamic_batch else None)
                return "torchscript"
            shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
            prog = torch.onnx.export(model.eval(), (x,), dynamo=True, opset_version=opset,
                                     input_names=["input"], output_names=["logits"],
                                     dynamic_shapes=shapes, verbose=False, optimize=True)
            prog.save(path)
            return "dynamo"
        except Exception as exc:
            raise EdgekitError(f"torch.onnx.export failed for this model ({first_line(exc, 200)}): "
                               "report it with the model definition") from None


def simplify(model):
    """Constant folding and redundant-node removal with onnxslim (the maintained successor of onnx-simplifier)."""
    import onnxslim

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


def write_onnx_with_meta(model, path: Path, meta: dict) -> None:
    import onnx

    from .info import write_meta

    write_meta(model, meta)
    onnx.save(model, str(path))
