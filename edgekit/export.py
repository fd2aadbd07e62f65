"""Torch -> ONNX, simplified with onnxslim, then checked against the source on real images."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgekitError, VerificationError, first_line
from .source import ModelSource

DEFAULT_OPSET = 18  # the dynamo exporter's own opset; TensorRT 10.x parses up to 20+


@dataclass
class Tolerance:
    """FP32 ONNX vs torch: max |diff| <= atol + rtol * max|torch logits| (numpy.allclose's rule)."""

    atol: float = 1e-4
    rtol: float = 1e-3


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


def reference_logits(source: ModelSource, x: np.ndarray) -> np.ndarray:
    """Logits of the source model: torch eager for zoo models, onnxruntime for a user's ONNX file."""
    if source.torch_model is not None:
        from .backends.torch import TorchRunner

        with TorchRunner(source.torch_model) as r:
            return np.concatenate([r.infer(x[i:i + 16]) for i in range(0, len(x), 16)])
    from .backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(source.onnx_path) as r:
        return run_batched(r, x)


def run_batched(runner, x: np.ndarray, progress=None, task=None) -> np.ndarray:
    """Run ``x`` through ``runner``, one image at a time when its batch is fixed."""
    step = runner.fixed_batch or 16
    outs = []
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        if runner.fixed_batch and len(chunk) != runner.fixed_batch:
            raise EdgekitError(f"cannot run {len(chunk)} images through a model fixed at batch {runner.fixed_batch}")
        outs.append(runner.infer(chunk))
        if progress is not None:
            progress.advance(task, len(chunk))
    return np.concatenate(outs)


def verify(onnx_path: Path, x: np.ndarray, ref: np.ndarray, tol: Tolerance) -> dict:
    """ONNX Runtime output vs the reference on the same real images; raises over tolerance."""
    from .backends.onnxruntime import OnnxRuntimeRunner
    from .stats import agreement, within_tolerance

    with OnnxRuntimeRunner(onnx_path) as r:
        out = run_batched(r, x)
    result = agreement(out, ref)
    result.update(atol=tol.atol, rtol=tol.rtol, max_abs_ref=float(np.abs(ref).max()),
                  passed=within_tolerance(result["max_abs_diff"], ref, tol.atol, tol.rtol))
    if not result["passed"]:
        raise VerificationError(
            f"{onnx_path.name} disagrees with its source: max |diff| {result['max_abs_diff']:.3g} > "
            f"{tol.atol:g} + {tol.rtol:g} x {result['max_abs_ref']:.3g}, top-1 agreement "
            f"{result['top1_agreement']:.1f}%: report the model, or pass a looser --atol/--rtol knowingly")
    return result


def write_onnx_with_meta(model, path: Path, meta: dict) -> None:
    import onnx

    from .onnxinfo import write_meta

    write_meta(model, meta)
    onnx.save(model, str(path))
