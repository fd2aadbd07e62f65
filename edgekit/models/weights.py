"""Loading weights a user points at: torchvision's ImageNet weights, a local checkpoint, or none.

A checkpoint is untrusted input: unpickling runs code, so state dicts load with ``weights_only=True`` and a
whole pickled model needs the explicit ``trust_checkpoint`` opt-in.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError, first_line
from ..fsutil import sha256_file
from .registry import ModelCard

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "model_ema", "ema")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadedModel:
    model: object  # torch.nn.Module (eval mode, CPU)
    source: str  # "imagenet", "random" or the checkpoint path
    num_classes: int
    categories: list[str] | None
    sha256: str | None = None
    pretrained: bool = True  # False for --weights random: accuracy is then not applicable


def hub_cache_path(card: ModelCard) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(card.weights.url)


def load(card: ModelCard, weights: str = "imagenet", num_classes: int | None = None,
         trust_checkpoint: bool = False, seed: int = 0, plan: dict | None = None) -> LoadedModel:
    """Build ``card``'s model with the given weights: "imagenet", "random" or a file path.

    With a pruning ``plan``, the architecture is first cut to the plan's widths (weights must be a file).
    """
    import torch

    if plan is not None and weights in ("imagenet", "random"):
        raise EdgekitError("--plan needs the pruned weights it was written with: pass --weights "
                           "pruned_state_dict.pt from the same edgekit prune run")
    if weights == "imagenet":
        if num_classes not in (None, 1000):
            raise EdgekitError(f"--num-classes {num_classes} does not fit ImageNet weights (1000 classes): "
                               "pass --weights PATH to your checkpoint or --weights random")
        model = card.build(1000)
        model.load_state_dict(_imagenet_state_dict(card))
        digest = sha256_file(card.package.path()) if card.package is not None else None
        return LoadedModel(model.eval(), "imagenet", 1000, card.categories, digest, pretrained=True)
    if weights == "random":
        torch.manual_seed(seed)
        n = num_classes or 1000
        return LoadedModel(card.build(n).eval(), "random", n,
                           card.categories if n == 1000 else None, pretrained=False)
    return _load_file(card, Path(weights), num_classes, trust_checkpoint, plan)


def _imagenet_state_dict(card: ModelCard) -> dict:
    if card.package is not None:  # shipped inside a package: offline, hash-checked
        return card.package.state_dict()
    cache = hub_cache_path(card)
    try:
        return card.weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, socket errors, hash mismatch: all end the same way for the user
        reason = first_line(getattr(exc, "reason", None) or exc, 120)
        raise EdgekitError(
            f"ImageNet weights for {card.name} are not in the torch hub cache ({cache}) and could not be "
            f"downloaded ({reason}): copy the file there, or pass --weights PATH (your checkpoint) or "
            "--weights random") from None


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def _load_file(card: ModelCard, path: Path, num_classes: int | None, trust: bool,
               plan: dict | None = None) -> LoadedModel:
    import torch

    if path.is_dir():
        hint = ""
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".ckpt"))[:3]
        if found:
            hint = f" (it holds {', '.join(found)})"
        raise EdgekitError(f"--weights {path} is a folder{hint}: pass the checkpoint file itself (.pt/.pth: a "
                           "state dict, checkpoint dict or TorchScript), --weights imagenet or --weights random")
    if not path.is_file():
        raise EdgekitError(f"weights file {path} not found: pass an existing checkpoint, "
                           "--weights imagenet or --weights random")
    digest = sha256_file(path)
    if _is_torchscript(path):
        try:
            model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:
            raise EdgekitError(f"{path} is a corrupt TorchScript file ({first_line(exc)}): "
                               "re-save it with torch.jit.save") from None
        n = num_classes or _scripted_num_classes(model, card)
        return LoadedModel(model, str(path), n, None, digest)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before the error we explain
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        pickled = "unsupported global" in text.lower() or (
            "Weights only load failed" in text and _starts_like_pickle(path))
        if not trust and pickled:
            raise EdgekitError(
                f"{path} holds pickled Python objects, not only tensors ({_unpickler_detail(exc)}), and "
                "unpickling runs code from the file: save model.state_dict() instead, or pass "
                "--trust-checkpoint if you trust its author") from None
        raise EdgekitError(f"{path} is not a readable checkpoint ({first_line(exc, 100)}): "
                           "pass a file written by torch.save") from None
    except Exception as exc:
        if "central directory" in str(exc) or isinstance(exc, EOFError):
            raise EdgekitError(f"{path} is truncated or corrupt ({first_line(exc, 80)}): copy it again or "
                               "re-save it with torch.save") from None
        raise EdgekitError(f"{path} is not a readable checkpoint ({first_line(exc, 100)}): "
                           "pass a file written by torch.save") from None

    if isinstance(obj, torch.nn.Module):
        n = num_classes or _scripted_num_classes(obj, card)
        return LoadedModel(obj.eval(), str(path), n, None, digest)
    state, categories = _find_state_dict(obj, path)
    state = {_strip(k): v for k, v in state.items()}
    if card.classifier not in state:
        raise EdgekitError(f"{path} has no {card.classifier} tensor, so it is not a {card.name} checkpoint "
                           f"(first keys: {', '.join(list(state)[:3])}): pass the model name it was trained as")
    n_ckpt = int(state[card.classifier].shape[0])
    if num_classes is not None and num_classes != n_ckpt:
        raise EdgekitError(f"--num-classes {num_classes} contradicts {path}, whose classifier has {n_ckpt} "
                           "outputs: drop --num-classes or pass the right checkpoint")
    model = card.build(n_ckpt)
    if plan is not None:
        from ..prune.plan import rebuild

        rebuild(model, plan, card)
    problem = _mismatch(model.state_dict(), state)
    if problem:
        hint = ("is it a pruned checkpoint? Pass its --plan plan.json" if plan is None and
                _only_shapes_differ(model.state_dict(), state) else "is it a checkpoint of another model? Pass "
                "the model name it was trained as")
        raise EdgekitError(f"{path} does not fit {card.name}: {problem}; {hint}")
    model.load_state_dict(state, strict=True)
    if categories is None and n_ckpt == 1000:
        categories = card.categories
    return LoadedModel(model.eval(), str(path), n_ckpt, categories, digest)


def _starts_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"  # the PROTO opcode that opens every pickle of protocol 2 or later


def _unpickler_detail(exc: Exception) -> str:
    """The line of torch's weights-only refusal that says what it met (e.g. a blocked GLOBAL posix.system)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("Trying to load unsupported", "Unsupported")):
            return ln[:100]
    return "refused by torch's weights-only loader"


def _find_state_dict(obj, path: Path):
    import torch

    if not isinstance(obj, dict):
        raise EdgekitError(f"{path} holds a {type(obj).__name__}, not a state dict or checkpoint dict: "
                           "save model.state_dict() with torch.save")
    categories = None
    for key in ("classes", "class_names", "categories"):
        if isinstance(obj.get(key), (list, tuple)):
            categories = [str(c) for c in obj[key]]
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, categories
    for key in _STATE_KEYS:
        sd = obj.get(key)
        if isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
            return sd, categories
    raise EdgekitError(f"{path} is a dict without a state dict (keys: {', '.join(map(str, list(obj)[:5]))}): "
                       f"store the weights under one of {', '.join(_STATE_KEYS)}")


def _mismatch(expected: dict, got: dict) -> str:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [k for k in expected if k in got and tuple(expected[k].shape) != tuple(got[k].shape)]
    parts = [f"{len(v)} {what} (e.g. {v[0]})" for what, v in
             (("tensors missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if v]
    return ", ".join(parts)


def _only_shapes_differ(expected: dict, got: dict) -> bool:
    return set(expected) == set(got)


def _strip(key: str) -> str:
    for p in _PREFIXES:
        if key.startswith(p):
            key = key[len(p):]
    return key


def _scripted_num_classes(model, card: ModelCard) -> int:
    sd = {_strip(k): v for k, v in model.state_dict().items()}
    if card.classifier in sd:
        return int(sd[card.classifier].shape[0])
    raise EdgekitError(f"cannot tell the number of classes of this {card.name} model: pass --num-classes")


def weights_sha256(model) -> str:
    """A hash of a torch model's class and weights: what pruning and fine-tuning start from. Not the exported ONNX
    file's hash, which also changes with export options (``--dynamic-batch``, the opset) that do not change what
    fine-tuning produces; keying on it made a search with other export options train again."""
    import torch

    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # the raw bytes, for every dtype
    return h.hexdigest()
