"""Recipes: one YAML file describes a whole pipeline (prune, fine-tune, export, quantize, profile, budgets).

Every command can write the recipe that reproduces it (``--save-recipe``), and ``edgekit run`` runs one, so a
CI job and a person at the terminal produce the same artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .check import Budget
from .errors import EdgekitError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class PreprocessSpec:
    input_size: int | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass(frozen=True)
class PruneSpec:
    ratio: float | None = None
    importance: str = "l1"
    round_to: int = 8
    global_pruning: bool = False
    sparsity: str | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.sparsity is None:
            raise EdgekitError("prune needs ratio and/or sparsity")
        if self.ratio is not None:
            from .prune import PruneConfig

            PruneConfig(self.ratio, self.importance, self.round_to, self.global_pruning)


@dataclass(frozen=True)
class FinetuneSpec:
    data: str
    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "adamw"
    batch_size: int = 64

    def config(self):
        from .finetune import FinetuneConfig

        return FinetuneConfig(self.epochs, self.optimizer, self.lr, batch_size=self.batch_size)

    def __post_init__(self) -> None:
        self.config()


@dataclass(frozen=True)
class QuantizeSpec:
    precision: str = "fp32"
    target: str = "cpu"
    calib_data: str | None = None
    calib_size: int = 512
    calib_method: str = "minmax"
    percentile: float = 99.999
    seed: int = 0
    max_drop: float | None = None
    max_float_layers: int | None = None
    exclude_ops: list[str] = field(default_factory=list)
    int8_ops: list[str] | None = None
    per_tensor: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgekitError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.max_drop is not None and self.max_drop < 0:
            raise EdgekitError(f"max_drop must not be negative (got {self.max_drop})")
        if self.calib_size < 1:
            raise EdgekitError(f"calib_size must be at least 1 (got {self.calib_size})")
        self.config()

    def config(self):
        from .quantize import QuantConfig

        return QuantConfig(self.target, self.calib_method, self.percentile, not self.per_tensor,
                           tuple(self.exclude_ops), tuple(self.int8_ops) if self.int8_ops else None)


@dataclass(frozen=True)
class ExportSpec:
    opset: int = 18
    dynamic_batch: bool = False

    def __post_init__(self) -> None:
        if self.opset < 17:
            raise EdgekitError(f"opset must be 17 or newer (got {self.opset})")


@dataclass(frozen=True)
class BackendSpec:
    name: str = "onnxruntime"
    device: str = "cpu"
    threads: int | None = None
    workspace_mb: int | None = None  # TensorRT builder workspace
    dla_core: int | None = None  # Jetson DLA, GPU fallback allowed
    builder_optimization_level: int | None = None

    def __post_init__(self) -> None:
        from .backends import get_spec

        spec = get_spec(self.name)
        if self.device not in spec.devices:
            raise EdgekitError(f"backend {self.name} runs on {', '.join(spec.devices)}, not {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise EdgekitError(f"threads must be at least 1 (got {self.threads})")


@dataclass(frozen=True)
class ProfileSpec:
    eval_data: str | None = None
    batch: int = 1
    warmup: int = 10
    repeats: int = 100

    def __post_init__(self) -> None:
        if self.repeats < 3 or self.warmup < 0 or self.batch < 1:
            raise EdgekitError("profile needs repeats >= 3, warmup >= 0 and batch >= 1")


@dataclass(frozen=True)
class Recipe:
    model: str
    weights: str = "imagenet"
    num_classes: int | None = None
    out: str | None = None
    eval_data: str | None = None
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    prune: PruneSpec | None = None
    finetune: FinetuneSpec | None = None
    quantize: QuantizeSpec = field(default_factory=QuantizeSpec)
    export: ExportSpec = field(default_factory=ExportSpec)
    backend: BackendSpec = field(default_factory=BackendSpec)
    profile: ProfileSpec | None = None
    budgets: Budget | None = None

    def __post_init__(self) -> None:
        from .source import is_onnx
        from .zoo import resolve_name

        if not is_onnx(self.model):
            resolve_name(self.model)
        if self.finetune is not None and (self.prune is None or self.prune.ratio is None):
            raise EdgekitError("finetune recovers pruned accuracy: add prune.ratio")
        if self.backend.name == "tensorrt" and self.quantize.precision == "int8" and self.quantize.target != "tensorrt":
            raise EdgekitError("a TensorRT INT8 engine needs quantize.target: tensorrt (symmetric Q/DQ)")


def load(path: str | Path, sets: list[str] | None = None) -> Recipe:
    """Read and validate a recipe; ``sets`` are ``key.sub=value`` overrides (values parsed as YAML)."""
    import yaml

    from .yamlschema import load_yaml

    recipe = load_yaml(path, Recipe)
    if not sets:
        return recipe
    doc = yaml.safe_load(Path(path).read_text())
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgekitError(f"--set {item!r}: use key=value, e.g. quantize.precision=int8")
        node = doc
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise EdgekitError(f"--set {item!r}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return load_yaml(f"{path} (with --set)", Recipe, text=yaml.safe_dump(doc, sort_keys=False))


def dump(recipe: Recipe) -> str:
    import yaml

    from .yamlschema import to_plain

    return "# edgekit recipe: run with `edgekit run THIS_FILE`\n" + yaml.safe_dump(to_plain(recipe), sort_keys=False)


def save(recipe: Recipe, path: str | Path) -> None:
    from .fsutil import atomic_write_text

    atomic_write_text(path, dump(recipe))


def out_dir(recipe: Recipe, path: str | Path) -> Path:
    return Path(recipe.out) if recipe.out else Path("edgekit-out") / Path(path).stem


def for_board(recipe: Recipe) -> bool:
    """A TensorRT recipe splits in two: the host exports up to the Jetson bundle, the board builds from it
    (`edgekit build BUNDLE`), since engines are built on the GPU that runs them."""
    return recipe.backend.name == "tensorrt"


def board_build(recipe: Recipe) -> dict:
    """The bundle's TensorRT build options (checked here, on the host, before any work)."""
    from .backends.tensorrt import BuildOptions

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
    from .api import CalibOptions, export_model, profile_model
    from .check import gate, metrics, passed
    from .errors import BudgetExceededError
    from .fsutil import check_out_dir
    from .source import PreprocessOverrides

    check_out_dir(out, force)
    pre = recipe.preprocess
    overrides = PreprocessOverrides(pre.input_size, pre.resize_size, pre.interpolation,
                                    tuple(pre.mean) if pre.mean else None, tuple(pre.std) if pre.std else None)
    reports: dict = {}
    weights, plan = recipe.weights, None
    eval_data = recipe.eval_data or (recipe.profile.eval_data if recipe.profile else None)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.prune is not None:
        from .prune import PruneConfig
        from .pruning_job import prune_model

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
        from .profile import TimingOptions

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


def from_export_args(model: str, out, weights: str, eval_data, num_classes, overrides, dynamic_batch: bool,
                     opset: int, precision: str, quant, calib, max_drop, threads, max_float_layers,
                     plan=None) -> Recipe:
    """The recipe that repeats an `edgekit export` call."""
    if plan is not None:
        raise EdgekitError("--save-recipe with --plan: save the recipe from `edgekit prune` instead")
    q = QuantizeSpec(precision, quant.target, calib.data, calib.size, quant.method, quant.percentile, calib.seed,
                     max_drop, max_float_layers, list(quant.exclude), list(quant.int8_ops) if quant.int8_ops else None,
                     not quant.per_channel)
    o = overrides
    pre = PreprocessSpec(o.input_size, o.resize_size, o.interpolation, list(o.mean) if o.mean else None,
                         list(o.std) if o.std else None)
    return Recipe(model=model, weights=weights, num_classes=num_classes, out=str(out), eval_data=eval_data,
                  preprocess=pre, quantize=q, export=ExportSpec(opset, dynamic_batch),
                  backend=BackendSpec(threads=threads))


def from_prune_args(model: str, out, weights: str, cfg, sparsity, finetune_data, ft, eval_data, num_classes,
                    overrides, threads) -> Recipe:
    """The recipe that repeats an `edgekit prune` call (its artifacts land in OUT/prune)."""
    if cfg is not None and cfg.layer_ratios:
        raise EdgekitError("--save-recipe with --layer-ratio: recipes take one global ratio")
    o = overrides
    pre = PreprocessSpec(o.input_size, o.resize_size, o.interpolation, list(o.mean) if o.mean else None,
                         list(o.std) if o.std else None)
    prune = PruneSpec(cfg.ratio if cfg else None, cfg.importance if cfg else "l1", cfg.round_to if cfg else 8,
                      cfg.global_pruning if cfg else False, sparsity)
    fin = None if finetune_data is None else FinetuneSpec(str(finetune_data), ft.epochs, ft.lr, ft.optimizer,
                                                          ft.batch_size)
    return Recipe(model=model, weights=weights, num_classes=num_classes, out=str(out), eval_data=eval_data,
                  preprocess=pre, prune=prune, finetune=fin, backend=BackendSpec(threads=threads))


def from_profile_args(model: str, out, backend: str, device: str, threads, eval_data, timing, weights: str,
                      num_classes, overrides) -> Recipe:
    """The recipe that repeats an `edgekit profile` call (export of the same model, then the same profile)."""
    o = overrides
    pre = PreprocessSpec(o.input_size, o.resize_size, o.interpolation, list(o.mean) if o.mean else None,
                         list(o.std) if o.std else None)
    return Recipe(model=model, weights=weights, num_classes=num_classes, out=str(out) if out else None,
                  eval_data=eval_data, preprocess=pre, backend=BackendSpec(backend, device, threads),
                  profile=ProfileSpec(eval_data, timing.batch, timing.warmup, timing.repeats))


__all__ = ["Recipe", "load", "dump", "save", "run", "dry_run", "steps", "replace"]
