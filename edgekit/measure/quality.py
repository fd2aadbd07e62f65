"""Does a file compute what its source computes, and how well does it classify."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError, VerificationError
from ..models.source import ModelSource
from ..stats import accuracy, accuracy_from, accuracy_parts, agreement, agreement_from, agreement_parts, concat_parts


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


def run_batched(runner, x: np.ndarray, progress=None, task=None, chunk: int = 16) -> np.ndarray:
    """Run ``x`` through ``runner`` ``chunk`` images at a time (or the largest batch it takes, a TensorRT engine's
    profile max), one at a time when its batch is fixed."""
    step = runner.fixed_batch or min(chunk, getattr(runner, "max_batch", chunk))
    outs = []
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        if runner.fixed_batch and len(chunk) != runner.fixed_batch:
            raise EdgekitError(f"cannot run {len(chunk)} images through a model fixed at batch {runner.fixed_batch}")
        outs.append(runner.infer(chunk))
        if progress is not None:
            progress.advance(task, len(chunk))
    return np.concatenate(outs)


def check_tolerance(path: Path, result: dict, max_abs_ref: float, tol: Tolerance) -> dict:
    """``result`` (an agreement with the reference) with the tolerance and its verdict; raises over tolerance."""
    from ..stats import within_tolerance

    result = {**result, "atol": tol.atol, "rtol": tol.rtol, "max_abs_ref": float(max_abs_ref)}
    result["passed"] = within_tolerance(result["max_abs_diff"], np.asarray([max_abs_ref]), tol.atol, tol.rtol)
    if not result["passed"]:
        raise VerificationError(
            f"{path.name} disagrees with its source: max |diff| {result['max_abs_diff']:.3g} > "
            f"{tol.atol:g} + {tol.rtol:g} x {result['max_abs_ref']:.3g}, top-1 agreement "
            f"{result['top1_agreement']:.1f}%: report the model, or pass a looser --atol/--rtol knowingly")
    return result


def verify(onnx_path: Path, x: np.ndarray, ref: np.ndarray, tol: Tolerance) -> dict:
    """ONNX Runtime output vs the reference on the same real images (a small array); raises over tolerance."""
    from ..backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(onnx_path) as r:
        out = run_batched(r, x)
    return check_tolerance(onnx_path, agreement(out, ref), float(np.abs(ref).max()), tol)


@dataclass
class Outcomes:
    """Per image, what one model answered on a stream of images: its top-1 class; with labels, right at top-1 and
    within the top 5; beside a reference model, the same top-1, the cosine of the logits, the largest difference.
    A few bytes an image, whatever the number of classes: the logits themselves are never kept."""

    top1: np.ndarray
    acc: dict | None = None
    agree: dict | None = None
    max_abs_ref: float | None = None
    kept: np.ndarray | None = None  # the logits of the images asked for with ``keep``, in that order

    def accuracy(self) -> dict:
        return accuracy_from(self.acc)

    def agreement(self) -> dict:
        return agreement_from(self.agree)

    def top1_agreement_with(self, other: "Outcomes") -> float:
        """``stats.agreement``'s top-1 agreement with a model scored on the same images."""
        return 100.0 * float((self.top1 == other.top1).mean())


def outcomes(runners: list, stream, reference=None, progress=None, desc: str = "evaluating",
             batch_size: int | None = None, keep=None, chunk: int = 16) -> list[Outcomes]:
    """One pass over ``stream`` (an ``ImageStream``) through every runner: each one's :class:`Outcomes`. With
    ``reference`` (a runner, or an index into ``runners``) the others' agreement with it is recorded too; ``keep``
    (a few positions) keeps those images' logits. Each runner sees the chunks ``run_batched`` always gave it, so
    the figures are those of one array of all images. Under torchrun each process reads its shard and every
    process gets the whole set's outcomes (``keep`` is for one process)."""
    from .. import dist
    from ..progress import track_progress

    ref_runner = runners[reference] if isinstance(reference, int) else reference
    mine = stream.shard(dist.rank(), dist.world_size()) if dist.active() else stream
    labels = mine.labelled
    parts: list[list[dict]] = [[] for _ in runners]
    kept: list[dict[int, np.ndarray]] = [{} for _ in runners]
    wanted = set() if keep is None or dist.active() else {int(k) for k in keep}
    ref_max, start = 0.0, 0
    from ..data.stream import BATCH

    with track_progress(progress) as prog:
        for x, y in mine.batches(batch_size or BATCH, prog, desc):
            ref = run_batched(ref_runner, x, chunk=chunk) if ref_runner is not None else None
            if ref is not None:
                ref_max = max(ref_max, float(np.abs(ref).max()) if ref.size else 0.0)
            for i, r in enumerate(runners):
                logits = ref if r is ref_runner else run_batched(r, x, chunk=chunk)
                if labels and y is not None and len(y) and y.max() >= logits.shape[1]:
                    raise EdgekitError(f"label index {int(y.max())} is outside the model's {logits.shape[1]} "
                                       "classes: evaluate with a folder of the model's own classes")
                part = {"top1": np.asarray(logits).reshape(len(logits), -1).argmax(1)}
                if labels:
                    part.update({f"acc_{k}": v for k, v in accuracy_parts(logits, y).items()})
                if ref is not None:
                    part.update({f"agree_{k}": v for k, v in agreement_parts(logits, ref).items()})
                parts[i].append(part)
                for k in wanted.intersection(range(start, start + len(x))):
                    kept[i][k] = logits[k - start]
            start += len(x)
    out = []
    for i, p in enumerate(parts):
        whole = concat_parts(p) if p else {"top1": np.empty(0, np.int64)}
        whole = dist.gather_interleaved(whole)
        acc = {k[4:]: v for k, v in whole.items() if k.startswith("acc_")} or None
        agree = {k[6:]: v for k, v in whole.items() if k.startswith("agree_")} or None
        rows = np.stack([kept[i][int(k)] for k in keep]) if wanted else None
        out.append(Outcomes(whole["top1"], acc, agree, _gathered_max(ref_max) if ref_runner is not None else None,
                            rows))
    return out


def _gathered_max(value: float) -> float:
    from .. import dist

    if not dist.active():
        return value
    return float(dist.gather_interleaved({"m": np.asarray([value])})["m"].max())


def evaluate(runner, x: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None = None,
             progress=None, desc: str = "evaluating") -> tuple[np.ndarray, dict]:
    """Logits of ``runner`` on a small array ``x`` with accuracy (when labelled) and agreement (when a reference is
    given)."""
    from ..progress import track_progress

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
