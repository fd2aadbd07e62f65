"""INT8 for LiteRT and ExecuTorch under the accuracy guard, judged by the format's own runtime.

As for ONNX (``quantize/guard.py``): quantize everything; if the drop on the selection half of the judge images
is over the budget, rank the layers by how much of the INT8 error each one causes and keep the most sensitive in
float (through the quantizer's own module filter), 1, 2, 3, 4, 6, 8... of them, until the drop fits; the figure
reported comes from the other, held-out half. Every trial file is written by the format's converter and scored by
its runtime (LiteRT's interpreter, ExecuTorch's runtime): what ships is what was judged.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..formats import registry as formats
from ..formats.pt2e import Int8Spec, calibrated, logits, rank_layers, weighted_layers
from ..measure.batches import reference, score
from ..quantize.guard import _exclusion_schedule
from .mobile_data import JudgeSets


@dataclass
class Int8Job:
    name: str  # tflite or pte
    src: formats.ConvertSource
    path: Path  # where the INT8 file goes (model_int8.<suffix>)
    judge: JudgeSets
    calib: object  # calibration batches (mobile_data.calibration_batches), or an array
    per_channel: bool
    budget: tuple  # (max_drop or None, where it comes from)
    max_float_layers: int | None = None
    threads: int | None = None


def _runner(name: str, path: Path, threads):
    from ..backends import registry
    from ..backends.base import RunnerRequest

    return registry.open_runner(formats.get(name).backend, RunnerRequest(path, threads=threads))


def _metric(facts: dict, labelled: bool) -> float:
    return facts["top1"] if labelled else facts["top1_agreement"]


def guarded_int8(job: Int8Job, source, progress=None) -> dict:
    """Write ``job.path`` (or ``*_over_budget``): INT8, with the fewest float layers that keep the drop in budget."""
    j, budget = job.judge, job.budget[0]
    sel_refs, held_refs = reference(source, j.selection()), reference(source, j.held_out())
    sel_base = _base(j.selection(), sel_refs, j.labelled)
    held_base = _base(j.held_out(), held_refs, j.labelled)

    def build(floated: tuple[str, ...], path: Path) -> float:
        formats.convert(job.name, job.src, path, "int8", Int8Spec(job.calib, job.per_channel, floated))
        with _runner(job.name, path, job.threads) as r:
            return _metric(score(r, j.selection(), sel_refs), j.labelled)

    task = progress.add_task(f"{job.name} INT8 (guard)", total=None) if progress is not None else None
    metric = build((), job.path)
    steps = [{"float_layers": [], "metric": metric, "drop": sel_base - metric}]
    ranking: list[tuple[str, float]] = []
    best = (sel_base - metric, ())
    if budget is not None and best[0] > budget:
        fmt = importlib.import_module(f"edgekit.formats.{formats.get(job.name).module}")
        q = calibrated(job.src.module, job.src.input_shape, fmt.quantizer(job.per_channel), Int8Spec(job.calib))
        ranking = rank_layers(q, weighted_layers(job.src.module), j.subset, logits(job.src.module, j.subset),
                              progress)
        limit = len(ranking) if job.max_float_layers is None else min(len(ranking), job.max_float_layers)
        trial = job.path.with_name(f".trial{job.path.suffix}")
        for k in _exclusion_schedule(limit):
            floated = tuple(n for n, _ in ranking[:k])
            metric = build(floated, trial)
            steps.append({"float_layers": list(floated), "metric": metric, "drop": sel_base - metric})
            if sel_base - metric < best[0]:
                best = (sel_base - metric, floated)
                os.replace(trial, job.path)
            if sel_base - metric <= budget:
                break
        trial.unlink(missing_ok=True)
    if task is not None:
        progress.remove_task(task)
    with _runner(job.name, job.path, job.threads) as r:
        held = score(r, j.held_out(), held_refs)
    held_drop = held_base - _metric(held, j.labelled)
    within = None if budget is None else held_drop <= budget
    path = job.path
    if within is False:
        path = job.path.rename(job.path.with_name(f"{job.path.stem}_over_budget{job.path.suffix}"))
    floated = set(best[1])
    return {"file": path.name, "judged_by": f"{j.basis}; by the {formats.get(job.name).backend} runtime",
            "budget": {"max_drop": budget, "source": job.budget[1]}, "within_budget": within,
            "selection": {"images": j.n_selection, "baseline": sel_base, "drop": best[0]},
            "held_out": {"images": j.n_held_out, "baseline": held_base, "metric": _metric(held, j.labelled),
                         "drop": held_drop, "agreement_with_fp32": held["top1_agreement"]},
            "float_layers": list(best[1]), "steps": steps, "per_channel": job.per_channel,
            "layers": [{"layer": n, "error_share": e, "float": n in floated} for n, e in ranking],
            "layers_judged_on": f"{len(j.subset)} selection images, in torch on the Q/DQ graph" if ranking else None}


def _base(batches, refs, labelled: bool) -> float:
    """The float model's score: its top-1 on labelled images, else 100 (its agreement with itself)."""
    if not labelled:
        return 100.0
    right = n = 0
    for (_, y), ref in zip(batches, refs):
        right += int((ref.reshape(len(ref), -1).argmax(1) == np.asarray(y)).sum())
        n += len(ref)
    return 100.0 * right / max(n, 1)
