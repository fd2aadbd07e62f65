"""Does a file compute what its source computes, and how well does it classify."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError, VerificationError
from ..models.source import ModelSource
from ..stats import accuracy, agreement


@dataclass
class Tolerance:
    """FP32 ONNX vs torch: max |diff| <= atol + rtol * max|torch logits| (numpy.allclose's rule)."""

    atol: float = 1e-4
    rtol: float = 1e-3


def reference_logits(source: ModelSource, x: np.ndarray) -> np.ndarray:
    """Logits of the source model: torch eager for zoo models, onnxruntime for a user's ONNX file."""
    if source.torch_model is not None:
        from ..backends.torch import TorchRunner

        with TorchRunner(source.torch_model) as r:
            return np.concatenate([r.infer(x[i:i + 16]) for i in range(0, len(x), 16)])
    from ..backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(source.onnx_path) as r:
        return run_batched(r, x)


def run_batched(runner, x: np.ndarray, progress=None, task=None) -> np.ndarray:
    """Run ``x`` through ``runner``, one image at a time when its batch is fixed, else in batches of 16 or the
    largest it takes (a TensorRT engine's profile max)."""
    step = runner.fixed_batch or min(16, getattr(runner, "max_batch", 16))
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
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..stats import agreement, within_tolerance

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


def evaluate(runner, x: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None = None,
             progress=None, desc: str = "evaluating") -> tuple[np.ndarray, dict]:
    """Logits of ``runner`` on ``x`` with accuracy (when labelled) and agreement (when a reference is given)."""
    from ..progress import track_progress
    from .quality import run_batched

    with track_progress(progress) as prog:
        task = prog.add_task(desc, total=len(x))
        logits = run_batched(runner, x, prog, task)
    out: dict = {}
    if labels is not None:
        if labels.max() >= logits.shape[1]:
            raise EdgekitError(f"label index {int(labels.max())} is outside the model's {logits.shape[1]} classes: "
                               "evaluate with a folder of the model's own classes")
        out["accuracy"] = accuracy(logits, labels)
    if reference is not None:
        out["agreement"] = agreement(logits, reference)
    return logits, out
