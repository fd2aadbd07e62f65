"""Recipes: one YAML file describes a whole pipeline (prune, fine-tune, export, quantize, profile, budgets).

Every command can write the recipe that reproduces it (``--save-recipe``), and ``edgekit run`` runs one, so a
CI job and a person at the terminal produce the same artifact. The export's sections (preprocess, export,
quantize, backend) are the ExportRequest's own option classes: one description of each option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgekitError
from ..models.source import PreprocessOverrides
from ..pipeline.request import EXPORT_BACKENDS, BackendOptions, GraphOptions, QuantizeOptions
from ..report.check import Budget


@dataclass(frozen=True)
class PruneSpec:
    """The recipe's ``prune`` section: what `edgekit prune` takes (a PruneConfig, plus sparsity)."""

    ratio: float | None = None
    importance: str = "l1"
    round_to: int | None = 8
    global_pruning: bool = False
    sparsity: str | None = None
    layer_ratios: dict[str, float] | None = None
    depth: float = 0.0

    def __post_init__(self) -> None:
        if self.ratio is None and self.sparsity is None:
            raise EdgekitError("prune needs ratio and/or sparsity")
        self.config()

    def config(self):
        from ..prune.plan import PruneConfig

        if self.ratio is None:
            return None
        return PruneConfig(self.ratio, self.importance, self.round_to, self.global_pruning,
                           tuple((self.layer_ratios or {}).items()), self.depth)


@dataclass(frozen=True)
class FinetuneSpec:
    """The recipe's ``finetune`` section: the images, and every field of FinetuneConfig."""

    data: str
    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "adamw"
    batch_size: int = 64
    weight_decay: float = 1e-4
    temperature: float = 4.0
    kd_weight: float = 0.7
    seed: int = 0
    augment: str = "crop-flip"

    def config(self):
        from ..prune.finetune import FinetuneConfig

        return FinetuneConfig(self.epochs, self.optimizer, self.lr, self.weight_decay, self.batch_size,
                              self.temperature, self.kd_weight, self.seed, self.augment)

    def __post_init__(self) -> None:
        self.config()


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
    trust_checkpoint: bool = False
    preprocess: PreprocessOverrides = field(default_factory=PreprocessOverrides)
    prune: PruneSpec | None = None
    finetune: FinetuneSpec | None = None
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    export: GraphOptions = field(default_factory=GraphOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)
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
        self.export_request()  # every refusal of the export, found when the recipe is read

    def prune_request(self, out: str | None = None, eval_data: str | None = None, force: bool = False):
        """The `edgekit prune` step this recipe runs before its export."""
        from ..pipeline.prune import PruneRequest
        from ..prune.finetune import FinetuneConfig

        p, f = self.prune, self.finetune
        return PruneRequest(self.model, out if out is not None else self.out, self.weights, self.num_classes,
                            self.trust_checkpoint, eval_data or self.eval_data, force, self.preprocess, p.config(),
                            p.sparsity,
                            f.data if f else None, f.config() if f else FinetuneConfig(), self.backend.threads)

    def export_request(self, out: str | None = None, weights: str | None = None, plan: str | None = None,
                       eval_data: str | None = None, force: bool = False):
        """The export this recipe runs; a prune step before it passes its pruned weights and plan."""
        from dataclasses import replace

        from ..pipeline.request import ExportRequest

        g = self.export if plan is None else replace(self.export, plan=plan)
        q = self.quantize
        if q.precision != "int8" and g.optimize is None and q.max_drop is not None:
            q = replace(q, max_drop=None)  # a recipe's INT8 budget waits for `--set quantize.precision=int8`
        b = self.backend
        if b.name not in EXPORT_BACKENDS:  # a profile backend (openvino, torch): the export writes ONNX files
            b = BackendOptions(threads=b.threads)
        return ExportRequest(self.model, out if out is not None else self.out, weights or self.weights,
                             self.num_classes, self.trust_checkpoint, eval_data or self.eval_data, force,
                             self.preprocess, g, q, b)


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
