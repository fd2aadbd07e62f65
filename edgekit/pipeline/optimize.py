"""`edgekit export --optimize`: build the candidate artifacts, measure each on this CPU, keep the best.

The choice logic is pure and lives in ``edgekit.optimize``; this module builds files and runs them.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import statistics
from pathlib import Path

import numpy as np

from ..data import calibration
from ..data.images import load_array
from ..errors import EdgekitError
from ..fsutil import sha256_file
from ..measure.quality import run_batched
from ..measure.timing import TimingOptions, time_runner
from ..quantize.config import QuantConfig
from ..stats import accuracy, agreement
from . import candidates as opt
from .candidates import (
    Candidate,
    Measured,
    candidates,
    choose,
    profiled_exclusions,
    runner_for,
    runtime_variants,
    tuning_seeds,
)

SWEEPS = 3  # every round times each candidate alone, in turn, this many times; the median of medians decides
PROFILED_STEPS = 4  # op types tried in float, costliest first
KEEP_IF_FASTER = 0.97  # a float op type stays only if the whole model got 3% faster (noise is ~1-2% here)


@dataclasses.dataclass(frozen=True)
class Quantizing:
    """How the search quantizes: the base config, the (materialized) calibration set and its range cache."""

    cfg: QuantConfig
    cal: object  # a CalibrationSet: read once per config, and its array feeds NNCF
    cache_file: Path
    key: str


@dataclasses.dataclass(frozen=True)
class Running:
    """How the search runs and times candidates."""

    threads: int | None
    timing: TimingOptions
    progress: object = None


class _Search:
    """Shared state of one --optimize run: the calibration set, the judge images, built files, measurements."""

    def __init__(self, source, tmp: Path, fp32_path: Path, x, y, quant: Quantizing, run: Running) -> None:
        self.source, self.tmp, self.fp32_path, self.x = source, tmp, fp32_path, x
        self.base_cfg, self.cal, self.cache_file, self.key = quant.cfg, quant.cal, quant.cache_file, quant.key
        self.threads, self.timing, self.progress = run.threads, run.timing, run.progress
        threads, progress, cal = run.threads, run.progress, quant.cal
        self.files: dict[tuple, Path] = {}
        self.labelled = y is not None and source.pretrained
        pool_x, pool_y = x, (y if self.labelled else None)
        if not self.labelled and cal.held_out is not None and len(cal.held_out):
            pool_x, _ = load_array(cal.held_out.subset(range(min(len(cal.held_out), 500))), source.preprocess,
                                   progress, "reading held-out images")
        sel, judge = opt.split_selection_judge(len(pool_x), pool_y)
        with runner_for(Candidate("ref", "onnxruntime", "fp32"), fp32_path, threads) as r:
            ref = run_batched(r, pool_x)
        # (images, labels or None, FP32 logits) of the half that chooses and of the half that reports
        self.halves = {name: (pool_x[idx], None if pool_y is None else pool_y[idx], ref[idx])
                       for name, idx in (("selection", sel), ("judge", judge))}
        self.baseline = {name: self._score(ref[idx], h) for (name, h), idx in zip(self.halves.items(), (sel, judge))}
        self.metrics: dict[str, dict[str, float]] = {}

    def _score(self, logits, half) -> float:
        _, labels, ref = half
        return accuracy(logits, labels)["top1"] if labels is not None else agreement(logits, ref)["top1_agreement"]

    def score(self, runner, half: str = "selection") -> float:
        h = self.halves[half]
        return self._score(run_batched(runner, h[0]), h)

    def describe_split(self) -> dict:
        return {"judged_by": "top-1" if self.labelled else "agreement with FP32",
                "selection_images": len(self.halves["selection"][0]), "judge_images": len(self.halves["judge"][0]),
                "baseline": self.baseline}

    def artifact(self, cand: Candidate) -> Path:
        if cand.precision == "fp32":
            return self.fp32_path
        if cand.artifact_key in self.files:
            return self.files[cand.artifact_key]
        (self.tmp / "candidates").mkdir(exist_ok=True)
        if cand.float_nodes:
            from .mixed import build_mixed

            path = build_mixed(self, cand.float_nodes,
                               self.tmp / "candidates" / f"int8-mixed-{len(cand.float_nodes)}.onnx")
        elif cand.nncf:
            from ..backends.openvino import int8_with_nncf

            path = int8_with_nncf(self.fp32_path, self.tmp / "candidates" / "nncf_int8.xml", self.cal.x)
        else:
            from ..quantize.guard import quantize_with_guard

            stem = "int8" + "".join(f"-float-{e.lower()}" for e in cand.exclude) + ("-s8" if
                                                                                   cand.symmetric_activations else "")
            path = self.tmp / "candidates" / f"{stem}.onnx"
            extra = (("ActivationSymmetric", True),) if cand.symmetric_activations else ()
            cfg = dataclasses.replace(self.base_cfg, exclude=self.base_cfg.exclude + cand.exclude,
                                      extra=self.base_cfg.extra + extra)
            suffix = "-s8" if cand.symmetric_activations else ""
            quantize_with_guard(self.fp32_path, path, cfg, self.cal,
                                self.cache_file.with_name(self.cache_file.stem + suffix + ".json"), self.key + suffix)
        self.files[cand.artifact_key] = path
        return path

    def measure(self, cands: list[tuple[Candidate, Path]]) -> list[Measured]:
        """Each candidate alone, in turn, ``SWEEPS`` times, the order rotated each sweep (no candidate always runs
        first or after the same one); accuracy (or agreement) once on each half: the selection half's drop is the
        one the choice uses, the judge half's is reported."""
        medians: dict[str, list[float]] = {c.name: [] for c, _ in cands}
        for sweep in range(SWEEPS):
            shift = sweep % len(cands)
            for cand, path in cands[shift:] + cands[:shift]:
                with runner_for(cand, path, self.threads) as r:
                    if cand.name not in self.metrics:
                        self.metrics[cand.name] = {h: self.score(r, h) for h in self.halves}
                    lat = time_runner(r, self.x[:1], self.timing, self.progress, desc=f"timing {cand.name}")
                medians[cand.name].append(lat["median_ms"])
                gc.collect()
        out = []
        for cand, path in cands:
            size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
            m = self.metrics[cand.name]
            sweeps = medians[cand.name]
            out.append(Measured(cand, statistics.median(sweeps), size, m["selection"],
                                self.baseline["selection"] - m["selection"],
                                str(path.relative_to(self.tmp)) if path.is_relative_to(self.tmp) else path.name,
                                {"sweeps_ms": sweeps, "spread_ms": max(sweeps) - min(sweeps),
                                 "judge_metric": m["judge"], "judge_drop": self.baseline["judge"] - m["judge"]}))
        return out


def optimize_artifact(ctx, q, g) -> dict:
    """Measure every candidate on this machine and keep the fastest (or smallest) within the budget on the
    selection half of the judge images; report each candidate's drop on the other half too.

    ``ctx`` is the export's StageContext, ``q`` its QuantizeOptions (the base INT8 settings and the budget),
    ``g`` its GraphOptions (the objective and the time budget)."""
    from .._optional import available as installed
    from ..backends import registry
    from ..backends.onnxruntime import op_times
    from ..graph.info import load_checked
    from .calib import calibration_set

    source, tmp, fp32_path, x, y = ctx.source, ctx.tmp, ctx.fp32_path, ctx.x, ctx.y
    notes, progress, threads, timing = ctx.notes, ctx.progress, ctx.threads, ctx.timing
    objective, time_budget, max_drop = g.optimize, g.time_budget, q.max_drop
    base_cfg, copts = q.config(), q.calib()
    clock = opt.TimeBudget(time_budget)  # from here: calibration and the reference run count too
    max_drop = 1.0 if max_drop is None else max_drop
    backends = ["onnxruntime"] + (["openvino"] if registry.available("openvino") else [])
    if len(backends) == 1:
        notes.append("OpenVINO is not installed, so only onnxruntime candidates were tried "
                     "(pip install 'edgekit[openvino]')")
    cal = calibration_set(source, copts, notes)
    key = calibration.cache_key(sha256_file(fp32_path), source.preprocess, {**base_cfg.method_fields(),
                                "target": "cpu"}, cal)
    cache_file = Path(copts.cache) if copts.cache else calibration.DEFAULT_CACHE_DIR / f"{source.name}-{key[:16]}.json"
    s = _Search(source, tmp, fp32_path, x, y, Quantizing(base_cfg, cal, cache_file, key),
                Running(threads, timing, progress))

    # round 1: precision, op exclusions, backends; FP32 always (the answer of last resort), the rest while time lasts
    built = []
    from ..models.registry import capabilities_of

    caps = capabilities_of(source.name) if source.family else None  # the card of a zoo model (or of its export)
    for c in candidates(caps, backends, nncf="openvino" in backends and installed("nncf")):
        if c.precision == "fp32" or clock.allows(c.name):
            built.append((c, s.artifact(c)))
    seen, unique = {}, []
    for cand, path in built:  # identical files on one backend are one candidate (e.g. no depthwise convs)
        digest = (cand.backend, sha256_file(path))
        if digest in seen:
            notes.append(f"{cand.name} is the same artifact as {seen[digest]}: measured once")
            continue
        seen[digest] = cand.name
        unique.append((cand, path))
    measured = s.measure(unique)
    clock.finished(len(unique))

    # round 1b: mixed precision from the guard's sensitivity ranking, where full INT8 misses the budget
    mixed: dict = {}
    if clock.allows("mixed precision", 2 * len(backends)):
        from .mixed import mixed_candidates

        cands, mixed = mixed_candidates(s, max_drop, backends, notes)
        cands = [c for c in cands if clock.allows(c.name)]
        if cands:
            measured += s.measure([(c, s.artifact(c)) for c in cands])
            clock.finished(len(cands))

    # round 2: where the INT8 time goes (onnxruntime's profiler), then float op types one at a time
    int8 = next((m for m in measured if m.candidate.name == "onnxruntime-int8"), None)
    profile, steps = {}, []
    if int8 is not None and clock.allows("profiled op types", 2):
        profile = op_times(tmp / int8.file, np.ascontiguousarray(x[:1]), threads)
        op_types = {n.op_type for n in load_checked(fp32_path).graph.node}
        order = profiled_exclusions(profile, op_types)
        best = int8
        for op in order[:PROFILED_STEPS]:
            excl = best.candidate.exclude + (op,)
            cand = Candidate("onnxruntime-int8-float-" + "-".join(e.lower() for e in excl), "onnxruntime", "int8",
                             exclude=excl)
            if not clock.allows(cand.name, 2):
                break
            again, trial = s.measure([(best.candidate, tmp / best.file), (cand, s.artifact(cand))])
            clock.finished(2)
            kept = trial.latency_ms < again.latency_ms * KEEP_IF_FASTER and trial.drop <= max_drop
            steps.append({"float": op, "ms": trial.latency_ms, "against_ms": again.latency_ms, "drop": trial.drop,
                          "kept": kept})
            measured.append(trial)
            if kept:
                best = trial
        if best is not int8 and "openvino" in backends and clock.allows(best.candidate.name + " on openvino"):
            ov = dataclasses.replace(best.candidate, name=best.candidate.name.replace("onnxruntime", "openvino"),
                                     backend="openvino")
            measured += s.measure([(ov, tmp / best.file)])
            clock.finished(1)

    # round 3: runtime options on the fastest artifacts within the budget, re-measured beside them
    seeds = tuning_seeds(measured, max_drop)
    variants = [(v, tmp / m.file) for m in seeds for v in runtime_variants(m.candidate)]
    if seeds and clock.allows("runtime options", len(seeds) + len(variants)):
        tuned = s.measure([(m.candidate, tmp / m.file) for m in seeds] + variants)
        clock.finished(len(seeds) + len(variants))
        again = {m.candidate.name: m for m in tuned}
        measured = [again.pop(m.candidate.name, m) for m in measured] + list(again.values())
    if clock.skipped:
        notes.append(f"--time-budget {time_budget:g} s: stopped starting candidates after {clock.spent():.0f} s; "
                     f"skipped {', '.join(clock.skipped)}")

    best = choose(measured, max_drop, objective)
    src_file = tmp / best.file
    chosen = tmp / f"model_best{src_file.suffix}"
    shutil.copyfile(src_file, chosen)
    if src_file.suffix == ".xml":  # an OpenVINO IR: the weights travel beside it
        shutil.copyfile(src_file.with_suffix(".bin"), chosen.with_suffix(".bin"))
    runtime = {"backend": best.candidate.backend, "threads": threads, "options": dict(best.candidate.runtime)}
    (tmp / "model_best.runtime.json").write_text(json.dumps(runtime, indent=2) + "\n")
    ort_fp32 = next(m for m in measured if m.candidate.name == "onnxruntime-fp32")
    notes.append(f"--optimize {objective}: chose {best.candidate.name} ({best.latency_ms:.3f} ms, drop "
                 f"{best.drop:.2f} on the {len(s.halves['selection'][0])} selection images, "
                 f"{best.extra['judge_drop']:.2f} on the {len(s.halves['judge'][0])} judge images); "
                 f"onnxruntime FP32 ran {ort_fp32.latency_ms:.3f} ms")
    if best.candidate.runtime:
        notes.append(f"the choice runs with {best.candidate.backend} options {dict(best.candidate.runtime)}: "
                     "model_best.runtime.json records them and `edgekit profile` applies them")
    return {"objective": objective, "max_drop": max_drop, **s.describe_split(), "mixed_precision": mixed,
            "time_budget": clock.describe(),
            "choice": {**best.to_dict(), "file": chosen.name, "source_file": best.file},
            "candidates": [m.to_dict() for m in measured], "threads": threads,
            "int8_profile_ms": profile, "profiled_search": steps}


def read_runtime(path: Path, backend: str) -> dict:
    """The runner options that --optimize chose for ``path`` (its ``.runtime.json``), if they are for ``backend``."""
    side = path.with_suffix(".runtime.json")
    if not side.exists():
        return {}
    try:
        facts = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgekitError(f"{side} is unreadable ({exc}): delete it or re-run `edgekit export --optimize`") from None
    return dict(facts.get("options", {})) if facts.get("backend") == backend else {}
