"""Recipes: one YAML file describes a whole pipeline (prune, fine-tune, export, quantize, profile, budgets).

Every command can write the recipe that reproduces it (``--save-recipe``), and ``edgekit run`` runs one, so a
CI job and a person at the terminal produce the same artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgekitError
from ..report.check import Budget

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
            from ..prune.plan import PruneConfig

            PruneConfig(self.ratio, self.importance, self.round_to, self.global_pruning)


@dataclass(frozen=True)
class FinetuneSpec:
    data: str
    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "adamw"
    batch_size: int = 64

    def config(self):
        from ..prune.finetune import FinetuneConfig

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
        from ..quantize.config import QuantConfig

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
        from ..backends import get_spec

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
        from ..models.registry import resolve_name
        from ..models.source import is_onnx

        if not is_onnx(self.model):
            resolve_name(self.model)
        if self.finetune is not None and (self.prune is None or self.prune.ratio is None):
            raise EdgekitError("finetune recovers pruned accuracy: add prune.ratio")
        if self.backend.name == "tensorrt" and self.quantize.precision == "int8" and self.quantize.target != "tensorrt":
            raise EdgekitError("a TensorRT INT8 engine needs quantize.target: tensorrt (symmetric Q/DQ)")


def load(path: str | Path, sets: list[str] | None = None) -> Recipe:
    """Read and validate a recipe; ``sets`` are ``key.sub=value`` overrides (values parsed as YAML)."""
    import yaml

    from .schema import load_yaml

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

    from .schema import to_plain

    return "# edgekit recipe: run with `edgekit run THIS_FILE`\n" + yaml.safe_dump(to_plain(recipe), sort_keys=False)


def save(recipe: Recipe, path: str | Path) -> None:
    from ..fsutil import atomic_write_text

    atomic_write_text(path, dump(recipe))


def out_dir(recipe: Recipe, path: str | Path) -> Path:
    return Path(recipe.out) if recipe.out else Path("edgekit-out") / Path(path).stem
