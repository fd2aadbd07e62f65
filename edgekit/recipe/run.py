"""Run a recipe: its steps, a dry run, and the bundle options for a board."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .._optional import available as installed
from ..errors import EdgekitError
from .spec import Recipe


def for_board(recipe: Recipe) -> bool:
    """A TensorRT recipe splits in two: the host exports up to the Jetson bundle, the board builds from it
    (`edgekit build BUNDLE`), since engines are built on the GPU that runs them (``backend.build_on: host``
    builds and measures the engine on this machine's GPU instead)."""
    return recipe.backend.name == "tensorrt" and recipe.backend.build_on in (None, "board")


def board_build(recipe: Recipe) -> dict:
    """The bundle's TensorRT build options (checked here, on the host, before any work)."""
    return recipe.backend.build(recipe.quantize.precision)


def steps(recipe: Recipe) -> list[str]:
    s = []
    if recipe.prune is not None:
        s.append("prune" + (" + fine-tune" if recipe.finetune else ""))
    s.append(f"export {recipe.quantize.precision}")
    if for_board(recipe):
        s += ["Jetson bundle (here)", "on the board: edgekit build BUNDLE (engine, profile, latency budget)"]
    elif recipe.profile is not None:
        s.append(f"profile on {recipe.backend.name}/{recipe.backend.device}")
    if recipe.budgets is not None:
        s.append("check budgets")
    return s


def dry_run(recipe: Recipe) -> list[str]:
    """Problems that would stop the run, found without running it (missing folders, missing backends)."""
    problems = []
    for what, p in (("weights", None if recipe.weights in ("imagenet", "random") else recipe.weights),
                    ("finetune.data", recipe.finetune.data if recipe.finetune else None),
                    ("quantize.calib_data", recipe.quantize.calib_data),
                    ("eval_data", recipe.eval_data),
                    ("profile.eval_data", recipe.profile.eval_data if recipe.profile else None)):
        if p is not None and not Path(p).exists():
            problems.append(f"{what}: {p} does not exist")
    if not for_board(recipe):  # the backend that profiles here must be installed here
        from ..backends import registry

        name = recipe.backend.name
        if not registry.available(name):
            missing = ", ".join(m for m in registry.get(name).requires if not installed(m))
            problems.append(f"backend {name}: {missing} is not installed here: {registry.get(name).fix}")
    if for_board(recipe):  # TensorRT is the board's: here only its build options are checked
        if recipe.quantize.precision == "fp32":
            problems.append("backend tensorrt: the Jetson bundle carries INT8 or FP16: set quantize.precision")
        try:
            board_build(recipe)
        except EdgekitError as exc:
            problems.append(f"backend: {exc}")
    return problems


def run(recipe: Recipe, out: Path, force: bool = False) -> dict:
    """Run every step; returns {step: report}. Stops with BudgetExceededError when budgets are missed."""
    from ..fsutil import check_out_dir

    check_out_dir(out, force)
    reports: dict = {}
    weights, plan = recipe.weights, None
    eval_data = recipe.eval_data or (recipe.profile.eval_data if recipe.profile else None)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.prune is not None:
        from ..pipeline.prune import prune_model

        reports["prune"] = prune_model(recipe.prune_request(str(out / "prune"), eval_data, force))
        if reports["prune"] is None:  # a torchrun process other than rank 0, which runs the other steps
            return {}
        weights = str(out / "prune" / "pruned_state_dict.pt")
        plan = str(out / "prune" / "plan.json") if recipe.prune.ratio is not None else None
    from .. import dist

    with dist.alone():  # under torchrun only rank 0 gets here: the other processes returned after fine-tuning
        return _after_prune(recipe, out, force, reports, (weights, plan, eval_data))


def _after_prune(recipe: Recipe, out: Path, force: bool, reports: dict, given: tuple) -> dict:
    from ..errors import BudgetExceededError
    from ..pipeline.export import export_model
    from ..pipeline.profile import ProfileRequest, profile_model
    from ..report.check import gate, metrics, passed

    weights, plan, eval_data = given
    q = recipe.quantize
    rep = export_model(recipe.export_request(str(out / "export"), weights, plan, eval_data, force),
                       board_budgets=_board_budgets(recipe))
    reports["export"] = rep  # an INT8 file over its budget raised BudgetExceededError in export_model
    artifact = out / "export" / (rep[q.precision]["file"] if q.precision in rep else "model.onnx")
    if recipe.profile is not None and not for_board(recipe):
        from ..measure.timing import TimingOptions

        pr = recipe.profile
        reports["profile"] = profile_model(ProfileRequest(
            str(artifact), str(out / "profile"), recipe.backend.name, recipe.backend.device, recipe.backend.threads,
            eval_data, timing=TimingOptions(pr.warmup, pr.repeats, pr.batch), force=force))
    if recipe.budgets is not None:
        final = reports.get("profile") or rep
        # latency is the board's to measure: the bundle carries that budget to `edgekit build`
        rows = gate(metrics(final), replace(recipe.budgets, max_latency_ms=None) if for_board(recipe) else
                    recipe.budgets)
        reports["check"] = [vars(r) for r in rows]
        if not passed(rows):
            bad = ", ".join(f"{r.metric} {r.value} (limit {r.limit})" for r in rows if r.verdict != "pass")
            raise BudgetExceededError(f"recipe budgets missed: {bad}")
    return reports


def _board_budgets(recipe: Recipe) -> dict | None:
    """The budget the board checks (latency; the rest is checked here)."""
    if for_board(recipe) and recipe.budgets is not None and recipe.budgets.max_latency_ms is not None:
        return {"max_latency_ms": recipe.budgets.max_latency_ms}
    return None
