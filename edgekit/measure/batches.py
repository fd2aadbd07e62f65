"""Agreement and accuracy of a runner over an iterable of ``(x, y or None)`` batches, against reference logits
batch by batch: nothing holds the whole image set at once (the stage streams it)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import VerificationError
from ..stats import within_tolerance


def reference(source, batches: Iterable) -> list[np.ndarray]:
    """The source model's logits per batch (torch for a zoo model, onnxruntime for a user's ONNX file)."""
    from .quality import reference_logits

    return [reference_logits(source, x) for x, _ in batches]


def score(runner, batches: Iterable, refs: list[np.ndarray]) -> dict:
    """Max |diff| and top-1 agreement with ``refs``, mean cosine, max |ref|, and top-1 accuracy where labelled."""
    from .quality import run_batched

    n = agree = right = 0
    labelled, worst, big, cos = True, 0.0, 0.0, 0.0
    for (x, y), ref in zip(batches, refs):
        got = run_batched(runner, x).reshape(len(x), -1).astype(np.float64)
        r = ref.reshape(len(x), -1).astype(np.float64)
        worst = max(worst, float(np.abs(got - r).max()))
        big = max(big, float(np.abs(r).max()))
        agree += int((got.argmax(1) == r.argmax(1)).sum())
        norms = np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(r, axis=1), 1e-30)
        cos += float(((got * r).sum(1) / norms).sum())
        if y is None:
            labelled = False
        else:
            right += int((got.argmax(1) == np.asarray(y)).sum())
        n += len(x)
    out = {"n": n, "max_abs_diff": worst, "max_abs_ref": big, "top1_agreement": 100.0 * agree / max(n, 1),
           "mean_cosine": cos / max(n, 1)}
    if labelled and n:
        out["top1"] = 100.0 * right / n
    return out


def check(name: str, facts: dict, atol: float, rtol: float) -> dict:
    """Hold an FP32 file to the export's tolerance (as ``model.onnx`` is held): raises over it."""
    ok = within_tolerance(facts["max_abs_diff"], np.array([facts["max_abs_ref"]]), atol, rtol)
    facts = {**facts, "atol": atol, "rtol": rtol, "passed": bool(ok)}
    if not ok:
        raise VerificationError(f"{name} disagrees with torch: max |diff| {facts['max_abs_diff']:.3g} > {atol:g} + "
                                f"{rtol:g} x {facts['max_abs_ref']:.3g}, top-1 agreement "
                                f"{facts['top1_agreement']:.1f}%: report the model and the converter's version")
    return facts
