"""What a user hands edgekit as "a model": a zoo name (with weights) or their own ONNX file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgekitError
from .preprocess import Preprocess


@dataclass
class ModelSource:
    name: str  # zoo name, or the ONNX file's stem
    preprocess: Preprocess
    num_classes: int
    categories: list[str] | None = None
    torch_model: object | None = None  # nn.Module for zoo models
    onnx_path: Path | None = None  # for a user's ONNX file
    weights: str = "n/a"
    weights_sha256: str | None = None
    pretrained: bool = True
    family: str | None = None
    notes: list[str] = field(default_factory=list)
    plan: dict | None = None  # the pruning plan the torch model was cut to

    @property
    def input_shape(self) -> list[int]:
        return [1, 3, self.preprocess.crop_size, self.preprocess.crop_size]

    def describe(self) -> dict:
        return {"name": self.name, "family": self.family, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "pretrained": self.pretrained,
                "num_classes": self.num_classes, "has_class_names": self.categories is not None,
                "pruned": self.plan is not None}


@dataclass(frozen=True)
class PreprocessOverrides:
    input_size: int | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def any(self) -> bool:
        return any(v is not None for v in vars(self).values())

    def apply(self, base: Preprocess) -> Preprocess:
        for flag, v in (("--input-size", self.input_size), ("--resize-size", self.resize_size)):
            if v is not None and v < 1:
                raise EdgekitError(f"{flag} {v}: give a positive size in pixels, e.g. 224")
        try:
            return base.with_overrides(self.input_size, self.resize_size, self.interpolation, self.mean, self.std)
        except ValueError as exc:
            raise EdgekitError(f"bad preprocessing option: {exc}") from None


def is_onnx(spec: str | Path) -> bool:
    return str(spec).lower().endswith(".onnx")


def open_model(spec: str, weights: str = "imagenet", num_classes: int | None = None,
               trust_checkpoint: bool = False, overrides: PreprocessOverrides | None = None,
               plan: str | None = None) -> ModelSource:
    overrides = overrides or PreprocessOverrides()
    if is_onnx(spec):
        if plan:
            raise EdgekitError("--plan applies to torch models, not ONNX files")
        return open_onnx(Path(spec), overrides)
    from . import weights as weights_mod
    from .registry import get_card

    card = get_card(spec)
    plan_doc = None
    if plan:
        from ..prune.plan import read_plan

        plan_doc = read_plan(plan)
    loaded = weights_mod.load(card, weights, num_classes, trust_checkpoint, plan=plan_doc)
    pre = overrides.apply(card.preprocess)
    if overrides.input_size is not None:
        check_input_size(loaded.model, card.name, pre.crop_size, card.preprocess.crop_size)
    return ModelSource(card.name, pre, loaded.num_classes, loaded.categories, loaded.model, None,
                       loaded.source, loaded.sha256, loaded.pretrained, card.family, plan=plan_doc)


def _runs_at(model, size: int) -> bool:
    import torch

    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
        return True
    except RuntimeError:  # "Output size is too small", "Kernel size can't be greater than actual input size"
        return False


def smallest_input(model, start: int, limit: int = 1024) -> int | None:
    """The smallest square size >= ``start`` that ``model`` runs at (doubling, then bisecting)."""
    hi = start
    while not _runs_at(model, hi):
        if hi >= limit:
            return None
        hi = min(hi * 2, limit)
    lo = max(start, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs_at(model, mid) else (mid + 1, hi)
    return hi


def check_input_size(model, name: str, size: int, default: int) -> None:
    """Refuse an --input-size the network's strides and pooling shrink below one pixel, naming the minimum."""
    if _runs_at(model, size):
        return
    least = smallest_input(model, size + 1)
    fix = f"pass --input-size {least} or more" if least else "pass a larger --input-size"
    raise EdgekitError(f"--input-size {size} is too small for {name}: its strides and pooling shrink the image "
                       f"below one pixel; {fix} (its card's size is {default})")


def _dims(shape: list) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _external_data_present(path: Path) -> None:
    """Name a missing external-data file (onnx's own error says "not regular")."""
    import onnx

    if not path.is_file():
        return  # load_checked says so
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return  # load_checked says what is wrong
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc and not (path.parent / loc).is_file():
                raise EdgekitError(f"{path} keeps its weights in {path.parent / loc}, which is missing: copy that "
                                   "file beside the .onnx (or re-export with the weights inside)")


def open_onnx(path: Path, overrides: PreprocessOverrides | None = None) -> ModelSource:
    """A user's ONNX file; its preprocessing comes from edgekit's metadata, the options, or ImageNet's."""
    from ..graph.info import io_shapes, load_checked, read_meta

    overrides = overrides or PreprocessOverrides()
    _external_data_present(path)
    model = load_checked(path)
    meta = read_meta(model)
    try:
        _, in_shape, _, out_shape = io_shapes(model)
    except EdgekitError as exc:
        raise EdgekitError(f"{path}: {exc}: export the classifier with its image as the only input") from None
    if len(in_shape) != 4 or in_shape[1] not in (None, 3):
        raise EdgekitError(f"{path} takes input of shape {_dims(in_shape)}, not (N, 3, H, W) images: export the "
                           "classifier with one RGB image input")
    if len(out_shape) != 2:
        raise EdgekitError(f"{path} outputs shape {_dims(out_shape)}, not (N, classes) logits: it is not an image "
                           "classifier (edgekit takes one); export the model up to its class scores")
    notes = []
    if "preprocess" in meta:
        base = Preprocess.from_dict(meta["preprocess"])
    else:
        size = in_shape[2] if len(in_shape) == 4 and in_shape[2] else 224
        base = Preprocess(size, round(size * 256 / 224))
        if not overrides.any():
            notes.append(f"{path.name} carries no edgekit metadata: assumed ImageNet preprocessing "
                         f"(resize {base.resize_size}, crop {size}, mean/std of ImageNet); pass --mean/--std/"
                         "--resize-size if your model was trained otherwise")
    pre = overrides.apply(base)
    if overrides.input_size is None and not (in_shape[2] and in_shape[3]):
        notes.append(f"{path.name} has a dynamic input height/width: used at {pre.crop_size}x{pre.crop_size}; "
                     "pass --input-size to choose another size")
    if len(in_shape) == 4 and in_shape[2] and in_shape[2] != pre.crop_size:
        raise EdgekitError(f"{path} takes {in_shape[2]}x{in_shape[3]} images, not {pre.crop_size}: "
                           f"drop --input-size or pass --input-size {in_shape[2]}")
    n = meta.get("num_classes") or (out_shape[-1] if out_shape and out_shape[-1] else None)
    if n is None:
        raise EdgekitError(f"cannot tell the number of classes of {path}: its output has no static size")
    return ModelSource(meta.get("model", path.stem), pre, int(n), meta.get("categories"), None, path,
                       meta.get("weights", "n/a"), meta.get("weights_sha256"), meta.get("pretrained", True),
                       meta.get("family"), notes)
