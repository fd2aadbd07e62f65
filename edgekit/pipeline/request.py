"""What an export is asked to do: one frozen request, built by the CLI, a recipe or a script, checked whole
before any work.

The command's conveniences live here, not in the CLI, so ``export_model(ExportRequest(...))`` and
``edgekit export`` behave alike: ``--target jetson`` means INT8 (unless FP16) with TensorRT's symmetric Q/DQ
and a bundle built on the board; ``--backend tensorrt`` means TensorRT's Q/DQ too; a batch profile makes the
batch axis dynamic. The recipe's sections are these same option classes, so ``--save-recipe`` writes a request
whole and ``edgekit run`` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data.train import Augment
from ..errors import EdgekitError
from ..formats import registry as mobile_formats
from ..models.source import PreprocessOverrides
from .refusals import EXPORT_BACKENDS, refusals  # noqa: F401 - recipes read EXPORT_BACKENDS from here

PRECISIONS = ("fp32", "fp16", "int8")
BUILD_ON = ("board", "host")


@dataclass(frozen=True)
class GraphOptions:
    """The recipe's ``export`` section: how the FP32 graph is made and checked, and the --optimize search."""

    opset: int = 18
    dynamic_batch: bool = False
    atol: float = 1e-4  # FP32 ONNX vs its source: max |diff| <= atol + rtol * max|logit|
    rtol: float = 1e-3
    max_images: int | None = None  # evaluation images, spread over the folder
    prune_ratio: float | None = None  # L1 channel pruning without fine-tuning (`edgekit prune` fine-tunes)
    plan: str | None = None  # a pruning plan from `edgekit prune` (weights then name its pruned_state_dict.pt)
    optimize: str | None = None  # latency or size: measure FP32/INT8 variants, keep the best in budget
    time_budget: float | None = None  # seconds the --optimize search may take
    finetune_data: str | None = None  # --optimize also tries pruned models fine-tuned on these images
    prune_ratios: tuple[float, ...] = (0.25, 0.5)  # the channel ratios of those pruned candidates
    finetune_epochs: int = 3
    drop_rule: str = "point"  # how --optimize holds a candidate to --max-drop: its drop, or its drop + one SE
    prune_depth: float = 0.0  # ShuffleNetV2's pruned candidates also lose this share of each stage's units
    finetune_augment: str = "crop-flip"  # the fine-tuning images' augmentation (edgekit.data.train.Augment)
    formats: tuple[str, ...] = ()  # --format: mobile formats (formats/registry.py), or ("all",)

    def __post_init__(self) -> None:
        from .candidates import DROP_RULES, OBJECTIVES

        if self.drop_rule not in DROP_RULES:
            raise EdgekitError(f"--drop-rule {self.drop_rule}: choose {' or '.join(DROP_RULES)}")

        object.__setattr__(self, "prune_ratios", tuple(float(r) for r in self.prune_ratios))
        object.__setattr__(self, "formats", mobile_formats.resolve(self.formats))  # unknown: "did you mean"
        if isinstance(self.finetune_data, Path):
            object.__setattr__(self, "finetune_data", str(self.finetune_data))
        if not self.prune_ratios or not all(0 < r < 1 for r in self.prune_ratios):
            raise EdgekitError(f"--prune-ratios {','.join(f'{r:g}' for r in self.prune_ratios) or '(none)'}: give "
                               "one or more shares of channels to remove, each in (0, 1), e.g. 0.25,0.5")
        if self.finetune_epochs < 1:
            raise EdgekitError(f"--finetune-epochs {self.finetune_epochs}: give at least 1")
        Augment(self.finetune_augment)  # an unknown name lists the choices
        if not 0 <= self.prune_depth < 1:
            raise EdgekitError(f"--prune-depth {self.prune_depth:g}: give the share of units to remove, in [0, 1)")

        if self.opset < 17:
            raise EdgekitError(f"opset must be 17 or newer (got {self.opset})")
        if self.optimize is not None and self.optimize not in OBJECTIVES:
            raise EdgekitError(f"--optimize {self.optimize}: choose {' or '.join(OBJECTIVES)}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise EdgekitError(f"--time-budget {self.time_budget}: give seconds above 0")
        if self.prune_ratio is not None and not 0 < self.prune_ratio < 1:
            raise EdgekitError(f"--prune {self.prune_ratio}: give the share of channels to remove, in (0, 1)")
        if self.max_images is not None and self.max_images < 1:
            raise EdgekitError(f"--max-images {self.max_images}: need at least 1 image")


@dataclass(frozen=True)
class QuantizeOptions:
    """The recipe's ``quantize`` section: precision, INT8 placement and calibration, the accuracy budget."""

    precision: str = "fp32"
    target: str = "cpu"  # cpu, tensorrt, or jetson (tensorrt + a bundle built on the board)
    calib_data: str | None = None
    calib_size: int = 512
    calib_method: str = "minmax"
    percentile: float = 99.999
    seed: int = 0
    calib_cache: str | None = None
    max_drop: float | str | None = None  # None: the default budget; "off": no budget
    max_float_layers: int | None = None
    exclude_ops: tuple[str, ...] = ()
    int8_ops: tuple[str, ...] | None = None
    per_tensor: bool = False
    reduce_range: bool | None = None  # 7-bit INT8 weights; None: when this CPU lacks VNNI (see QuantConfig)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgekitError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if isinstance(self.max_drop, str) and self.max_drop != "off":
            raise EdgekitError(f"max_drop {self.max_drop!r}: give top-1 points (e.g. 1 or 0.5), or off")
        if isinstance(self.max_drop, (int, float)) and not self.max_drop >= 0:
            raise EdgekitError(f"max_drop must not be negative (got {self.max_drop})")
        if self.calib_size < 1:
            raise EdgekitError(f"calib_size must be at least 1 (got {self.calib_size})")
        if self.max_float_layers is not None and self.max_float_layers < 0:
            raise EdgekitError(f"max_float_layers must not be negative (got {self.max_float_layers})")
        object.__setattr__(self, "exclude_ops", tuple(self.exclude_ops))
        object.__setattr__(self, "int8_ops", tuple(self.int8_ops) if self.int8_ops else None)
        if self.target != "jetson":
            self.config()

    def config(self):
        from ..quantize.config import QuantConfig

        return QuantConfig(self.target, self.calib_method, self.percentile, not self.per_tensor,
                           self.exclude_ops, self.int8_ops, reduce_range=self.reduce_range)

    def calib(self):
        from .calib import CalibOptions

        return CalibOptions(self.calib_data, self.calib_size, self.seed, self.calib_cache)


@dataclass(frozen=True)
class BackendOptions:
    """The recipe's ``backend`` section: the runtime, and TensorRT's build options when it is TensorRT."""

    name: str = "onnxruntime"
    device: str = "cpu"
    threads: int | None = None
    build_on: str | None = None  # tensorrt: "board" (the default: a bundle the Jetson builds) or "host" (here)
    workspace_mb: int | None = None
    dla_core: int | None = None
    batch_profile: tuple[int, int, int] | None = None  # min, opt, max batch of the optimization profile
    sparse_weights: bool = False
    builder_optimization_level: int | None = None

    def __post_init__(self) -> None:
        from ..backends import registry

        spec = registry.get(self.name)
        if self.device not in spec.devices:
            raise EdgekitError(f"backend {self.name} runs on {', '.join(spec.devices)}, not {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise EdgekitError(f"threads must be at least 1 (got {self.threads})")
        if self.build_on is not None and self.build_on not in BUILD_ON:
            raise EdgekitError(f"build_on {self.build_on!r}: choose board or host")
        if self.batch_profile is not None:
            object.__setattr__(self, "batch_profile", tuple(self.batch_profile))

    def build(self, precision: str) -> dict:
        """TensorRT build options (checked now: a bad combination is refused before any work)."""
        from ..backends.tensorrt.options import BuildOptions

        opts = {k: v for k, v in (("workspace_mb", self.workspace_mb), ("dla_core", self.dla_core),
                                  ("dynamic_batch", self.batch_profile), ("sparsity", self.sparse_weights or None),
                                  ("builder_optimization_level", self.builder_optimization_level)) if v is not None}
        BuildOptions(precision=precision, **opts)
        return opts


@dataclass(frozen=True)
class ExportRequest:
    """Everything `edgekit export` does, once. Build it, then ``export_model(request)``."""

    model: str
    out: str | None = None  # default edgekit-out/<model>
    weights: str = "imagenet"
    num_classes: int | None = None
    trust_checkpoint: bool = False
    eval_data: str | None = None
    force: bool = False
    preprocess: PreprocessOverrides = field(default_factory=PreprocessOverrides)
    export: GraphOptions = field(default_factory=GraphOptions)
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)

    def __post_init__(self) -> None:
        normal = _normalized(self.quantize, self.backend, self.export)
        for name, value in zip(("quantize", "backend", "export"), normal):
            object.__setattr__(self, name, value)
        for name in ("out", "eval_data", "weights"):
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
        refusals(self)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("edgekit-out") / Path(self.model).stem

    @property
    def precision(self) -> str:
        return self.quantize.precision

    @property
    def jetson(self) -> dict | None:
        """Build options of the Jetson bundle, when the board builds the engine."""
        b = self.backend
        return b.build(self.precision) if b.name == "tensorrt" and b.build_on == "board" else None

    @property
    def engine(self) -> dict | None:
        """Build options of a TensorRT engine built and measured on this machine's GPU."""
        b = self.backend
        return b.build(self.precision) if b.name == "tensorrt" and b.build_on == "host" else None


def _normalized(q: QuantizeOptions, b: BackendOptions, g: GraphOptions):
    """The command's implied settings, applied once (idempotent, so a saved request reads back equal)."""
    if q.target == "jetson":
        q = replace(q, target="tensorrt", precision="int8" if q.precision == "fp32" else q.precision)
        b = replace(b, name="tensorrt", device="cuda", build_on="board")
    if b.name == "tensorrt" and q.target == "cpu":
        q = replace(q, target="tensorrt")  # TensorRT reads symmetric Q/DQ only
    if b.name == "tensorrt" and b.build_on is None:
        b = replace(b, build_on="board")
    if b.name != "tensorrt" and b.build_on is not None:
        b = replace(b, build_on=None)
    if b.batch_profile is not None and not g.dynamic_batch:
        g = replace(g, dynamic_batch=True)
    return q, b, g


def precision_of(int8: bool, fp16: bool) -> str:
    """The --int8/--fp16 flags as one precision."""
    if int8 and fp16:
        raise EdgekitError("--int8 and --fp16 together: choose one precision per export (run export twice "
                           "for both)")
    return "int8" if int8 else "fp16" if fp16 else "fp32"


def parse_max_drop(text: str | None) -> float | str | None:
    """--max-drop: None (the default budget), "off", or top-1 points."""
    if text is None or text.strip().lower() in ("off", "none"):
        return None if text is None else "off"
    try:
        value = float(text)
    except ValueError:
        raise EdgekitError(f"--max-drop {text}: give top-1 points (e.g. 1 or 0.5), or off") from None
    if not value >= 0:
        raise EdgekitError(f"--max-drop {text}: a budget cannot be negative; give top-1 points, or off")
    return value
