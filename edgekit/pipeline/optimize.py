"""`edgekit export --optimize`: build the candidate artifacts, measure each on this CPU, keep the best.

The choice logic is pure and lives in ``candidates.py``; ``search.py`` builds files and measures them; this module
runs the rounds.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from ..data import calibration
from ..errors import EdgekitError
from ..fsutil import sha256_file
from . import candidates as opt
from . import runoff as ro
from .candidates import Candidate, candidates, choose, profiled_exclusions, runtime_variants, tuning_seeds
from .clock import TimeBudget
from .search import Quantizing, Running, Search

PROFILED_STEPS = 4  # op types tried in float, costliest first
KEEP_IF_FASTER = 0.97  # a float op type stays only if the whole model got 3% faster (noise is ~1-2% here)


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

    source, tmp, fp32_path = ctx.source, ctx.tmp, ctx.fp32_path
    notes, progress, threads, timing = ctx.notes, ctx.progress, ctx.threads, ctx.timing
    objective, time_budget, max_drop = g.optimize, g.time_budget, q.max_drop
    base_cfg, copts = q.config(), q.calib()
    clock = TimeBudget(time_budget)  # from here: calibration and the reference run count too
    max_drop = 1.0 if max_drop is None else max_drop
    backends = ["onnxruntime"] + (["openvino"] if registry.available("openvino") else [])
    if len(backends) == 1:
        from .._optional import extra_hint

        notes.append(f"OpenVINO is not installed, so only onnxruntime candidates were tried ({extra_hint('openvino')})")
    cal = calibration_set(source, copts, notes, progress)
    key = calibration.cache_key(sha256_file(fp32_path), source.preprocess, {**base_cfg.method_fields(),
                                "target": "cpu"}, cal)
    cache_file = Path(copts.cache) if copts.cache else calibration.DEFAULT_CACHE_DIR / f"{source.name}-{key[:16]}.json"
    s = Search(source, tmp, fp32_path, ctx.images, Quantizing(base_cfg, cal, cache_file, key),
                Running(threads, timing, progress), g.drop_rule)

    # round 1: precision, op exclusions, backends; FP32 always (the answer of last resort), the rest while time lasts
    built = []
    from ..models.registry import capabilities_of

    caps = capabilities_of(source.name) if source.family else None  # the card of a zoo model (or of its export)
    for c in candidates(caps, backends, nncf="openvino" in backends and installed("nncf")) + \
            mobile_candidates(source, g.formats, notes):
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

    # round 1c: pruned and fine-tuned models (--finetune-data), each in FP32 and in round 1's best INT8 recipe
    pruned: dict = {}
    if g.finetune_data is not None:
        from ..prune.finetune import FinetuneConfig
        from .pruned import FinetuneSearch, pruned_round, ship_pruned

        fs = FinetuneSearch(g.finetune_data, g.prune_ratios, FinetuneConfig(epochs=g.finetune_epochs,
                                                                            augment=g.finetune_augment),
                            cache_file.parent, g.opset, g.dynamic_batch, g.prune_depth)
        more, pruned = pruned_round(s, fs, measured, max_drop, backends, clock)
        measured += more

    # round 2: where the INT8 time goes (onnxruntime's profiler), then float op types one at a time
    int8 = next((m for m in measured if m.candidate.name == "onnxruntime-int8"), None)
    profile, steps = {}, []
    if int8 is not None and clock.allows("profiled op types", 2):
        profile = op_times(tmp / int8.file, s.sample, threads)
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
            kept = trial.latency_ms < again.latency_ms * KEEP_IF_FASTER and trial.fits(max_drop)
            steps.append({"float": op, "ms": trial.latency_ms, "against_ms": again.latency_ms, "drop": trial.drop,
                          "budget_drop": trial.budget_drop, "kept": kept})
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
    # round 4: a runoff between the choice and its near-ties, timed head-to-head; ties in speed go to the smaller file
    field, runoff, best = ro.runoff_field(measured, max_drop, objective), {}, None
    if field and clock.allows("runoff", len(field)):
        before = choose(measured, max_drop, objective).candidate.name
        again = s.runoff([(m.candidate, tmp / m.file) for m in field])
        clock.finished(len(field))
        measured, best, ties = ro.after_runoff(measured, again, max_drop, objective)
        fastest = choose([m for m in measured if m.candidate.name in again], max_drop, objective)
        runoff = {"candidates": list(again), "within": ro.RUNOFF_WITHIN, "rounds": ro.RUNOFF_ROUNDS,
                  "choice_before": before, "fastest": fastest.candidate.name, "speed_ties": ties,
                  "choice_after": best.candidate.name}
        notes += ro.runoff_notes(runoff, best, fastest)
    if clock.skipped:
        notes.append(f"--time-budget {time_budget:g} s: stopped starting candidates after {clock.spent():.0f} s; "
                     f"skipped {', '.join(clock.skipped)}")

    best, veto = opt.held_out_veto(best or choose(measured, max_drop, objective), measured, max_drop, objective,
                                   len(s.halves["judge"]))
    if veto:
        notes.append(veto["note"])
    src_file = tmp / best.file
    chosen = tmp / f"model_best{src_file.suffix}"
    shutil.copyfile(src_file, chosen)
    if src_file.suffix == ".xml":  # an OpenVINO IR: the weights travel beside it
        shutil.copyfile(src_file.with_suffix(".bin"), chosen.with_suffix(".bin"))
    shipped = [] if best.candidate.pruned is None else ship_pruned(s, best.candidate.pruned, chosen)
    runtime = {"backend": best.candidate.backend, "threads": threads, "options": dict(best.candidate.runtime)}
    (tmp / "model_best.runtime.json").write_text(json.dumps(runtime, indent=2) + "\n")
    ort_fp32 = next(m for m in measured if m.candidate.name == "onnxruntime-fp32")
    notes.append(f"--optimize {objective}: shipped {best.candidate.name} ({best.latency_ms:.3f} ms, drop "
                 f"{best.extra['judge_drop']:.2f} on the {len(s.halves['judge'])} held-out judge images, "
                 f"{best.drop:.2f} on the {len(s.halves['selection'])} selection images it was chosen on"
                 f"{f' + one standard error, {best.margin:.2f}, under --drop-rule one-se' if best.margin else ''}); "
                 f"onnxruntime FP32 ran {ort_fp32.latency_ms:.3f} ms")
    sure = best.extra.get("drop_uncertainty")
    if sure and sure["high"] > max_drop:
        notes.append(opt.uncertainty_note(sure, max_drop))
    if best.candidate.runtime:
        notes.append(f"the choice runs with {best.candidate.backend} options {dict(best.candidate.runtime)}: "
                     "model_best.runtime.json records them and `edgekit profile` applies them")
    return {"objective": objective, "max_drop": max_drop, "drop_rule": g.drop_rule, **s.describe_split(),
            "mixed_precision": mixed, "pruned": pruned, "shipped_with_choice": shipped,
            "time_budget": clock.describe(), "runoff": runoff, "vetoed": veto,
            "choice": {**best.to_dict(), "file": chosen.name, "source_file": best.file},
            "candidates": [m.to_dict() for m in measured], "threads": threads,
            "int8_profile_ms": profile, "profiled_search": steps}


def mobile_candidates(source, formats: tuple, notes: list[str]) -> list[Candidate]:
    """LiteRT and ExecuTorch files as candidates when --format names them and their extras are installed: FP32 and
    INT8 with the runtime's documented defaults, converted from the torch model and measured like the rest. (Only
    when asked for: each costs a conversion of seconds to minutes.)"""
    from .._optional import available
    from ..formats import registry as fr

    out = []
    for fmt in (f for f in fr.expand(formats) if f in ("tflite", "pte")):
        spec = fr.get(fmt)
        if source.torch_model is None or not all(available(m) for m in spec.requires):
            notes.append(f"--optimize: no {spec.backend} candidates (" + ("an ONNX input: they convert from the "
                         "torch model)" if source.torch_model is None else f"edgekit's [{spec.extra}] extra is not "
                         "installed)"))
            continue
        out += [Candidate(f"{spec.backend}-{p}", spec.backend, p, fmt=fmt) for p in ("fp32", "int8")]
    return out


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
