"""Run a recipe: its steps, a dry run, and the bundle options for a board."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .._optional import available as installed
from ..errors import EdgekitError
from .spec import Recipe


def for_board(recipe: Recipe) -> bool:
    """A TensorRT recipe splits in two: the host exports up to the Jetson bundle, the board builds from it
    (`edgekit build BUNDLE`), since engines are built on the GPU that runs them."""
    return recipe.backend.name == "tensorrt"


def board_build(recipe: Recipe) -> dict:
    """The bundle's TensorRT build options (checked here, on the host, before any work)."""
    from ..backends.tensorrt.options import BuildOptions

    b = recipe.backend
    build = {k: v for k, v in (("workspace_mb", b.workspace_mb), ("dla_core", b.dla_core),
                               ("builder_optimization_level", b.builder_optimization_level)) if v is not None}
    BuildOptions(precision=recipe.quantize.precision, **build)
    return build


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
    from ..errors import BudgetExceededError
    from ..fsutil import check_out_dir
    from ..models.source import PreprocessOverrides
    from ..pipeline.calib import CalibOptions
    from ..pipeline.export import export_model
    from ..pipeline.profile import profile_model
    from ..report.check import gate, metrics, passed

    check_out_dir(out, force)
    pre = recipe.preprocess
    overrides = PreprocessOverrides(pre.input_size, pre.resize_size, pre.interpolation,
                                    tuple(pre.mean) if pre.mean else None, tuple(pre.std) if pre.std else None)
    reports: dict = {}
    weights, plan = recipe.weights, None
    eval_data = recipe.eval_data or (recipe.profile.eval_data if recipe.profile else None)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.prune is not None:
        from ..pipeline.prune import prune_model
        from ..prune.plan import PruneConfig

        p = recipe.prune
        cfg = None if p.ratio is None else PruneConfig(p.ratio, p.importance, p.round_to, p.global_pruning)
        reports["prune"] = prune_model(recipe.model, out / "prune", weights, cfg, p.sparsity,
                                       recipe.finetune.data if recipe.finetune else None,
                                       recipe.finetune.config() if recipe.finetune else None, eval_data,
                                       recipe.num_classes, False, overrides, recipe.backend.threads, force)
        weights = str(out / "prune" / "pruned_state_dict.pt")
        plan = str(out / "prune" / "plan.json") if cfg is not None else None
    q = recipe.quantize
    rep = export_model(recipe.model, out / "export", weights, eval_data, recipe.num_classes, False, overrides,
                       recipe.export.dynamic_batch, recipe.export.opset, None, None, force,
                       int8=q.precision == "int8", fp16=q.precision == "fp16", quant=q.config(),
                       calib=CalibOptions(q.calib_data, q.calib_size, q.seed), max_drop=q.max_drop,
                       threads=recipe.backend.threads, max_float_layers=q.max_float_layers, plan=plan,
                       jetson=_bundle_options(recipe) if for_board(recipe) else None)
    reports["export"] = rep
    artifact = out / "export" / (rep[q.precision]["file"] if q.precision in rep else "model.onnx")
    if "int8" in rep and rep["int8"]["within_budget"] is False:
        raise BudgetExceededError(f"INT8 misses max_drop {rep['int8']['max_drop']} on held-out images: best attempt "
                                  f"kept as {artifact}")
    if recipe.profile is not None and not for_board(recipe):
        from ..measure.timing import TimingOptions

        pr = recipe.profile
        reports["profile"] = profile_model(str(artifact), out / "profile", recipe.backend.name,
                                           recipe.backend.device, recipe.backend.threads, eval_data, None,
                                           TimingOptions(pr.warmup, pr.repeats, pr.batch), force=force)
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


def _bundle_options(recipe: Recipe) -> dict:
    """The bundle's build options and the budget the board checks (latency; the rest is checked here)."""
    opts = board_build(recipe)
    if recipe.budgets is not None and recipe.budgets.max_latency_ms is not None:
        opts["budgets"] = {"max_latency_ms": recipe.budgets.max_latency_ms}
    return opts
