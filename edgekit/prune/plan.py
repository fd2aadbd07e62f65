"""Structured channel pruning on Torch-Pruning's dependency graph, as a readable plan; and sparsity.

A pruning plan (JSON) records the base model and, for every layer, the channels it kept. The pruned
model is rebuilt from the plan plus a plain state dict: no pickled modules.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError
from .importance import check_importance, importance_label, make_importance, needs_gradients

PLAN_VERSION = 1


@dataclass(frozen=True)
class PruneConfig:
    ratio: float = 0.3  # channel ratio: parameters fall by about 1 - (1 - ratio)^2
    importance: object = "l1"  # a registered name (prune.importance) or a Torch-Pruning Importance object
    round_to: int | None = 8  # TensorRT- and SIMD-friendly widths
    global_pruning: bool = False
    layer_ratios: tuple[tuple[str, float], ...] = ()  # per-layer overrides, by module name
    depth: float = 0.0  # share of each stage's repeated units removed (ShuffleNetV2: prune/shufflenet.py)

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise EdgekitError(f"--ratio {self.ratio} must lie strictly between 0 and 1 (the share of channels "
                               "removed)")
        if not 0.0 <= self.depth < 1.0:
            raise EdgekitError(f"--depth {self.depth:g} must lie in [0, 1) (the share of each stage's repeated "
                               "units removed)")
        check_importance(self.importance)
        if self.round_to is not None and self.round_to < 1:
            raise EdgekitError(f"--round-to {self.round_to} must be 1 or more")
        for name, r in self.layer_ratios:
            if not 0.0 < r < 1.0:
                raise EdgekitError(f"ratio {r} for layer {name} must lie strictly between 0 and 1")


def check_prunable(card, depth: float = 0.0, flag: str = "--depth") -> None:
    """The card's capabilities say how it prunes; refuse, with their reason, the ones that do not."""
    caps = card.capabilities
    if not caps.prunable:
        raise EdgekitError(f"{card.name} cannot be pruned safely: {caps.prune_refusal}; prune another family, or "
                           "use --sparsity (no channels removed)")
    if depth and caps.prune != "shufflenet":
        raise EdgekitError(f"{flag} {depth:g}: removing units is built for ShuffleNetV2 only, not {card.name}; "
                           f"drop {flag} (channel pruning applies to every family)")


def _module(model, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise EdgekitError(f"layer {name!r} does not exist in this model") from None


def kept_layers(model, card) -> list:
    """The stem (first conv) and the classifier keep their channels."""
    import torch

    stem = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    head = _module(model, card.classifier.rsplit(".", 1)[0])
    return [stem, head]


def channel_counts(model) -> dict[str, int]:
    import torch

    return {n: (m.out_channels if isinstance(m, torch.nn.Conv2d) else m.out_features)
            for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


def prune(model, card, input_shape, cfg: PruneConfig, taylor_batches=None):
    """Prune ``model`` in place; returns the plan (a dict ready for JSON)."""
    import torch

    with torch.enable_grad():  # Torch-Pruning traces the graph through autograd: a caller's no_grad would hide it
        return _prune(model, card, input_shape, cfg, taylor_batches)


def _prune(model, card, input_shape, cfg: PruneConfig, taylor_batches=None):
    import torch
    import torch_pruning as tp

    check_prunable(card, cfg.depth)
    model.eval()
    example = torch.zeros(*input_shape)
    before = channel_counts(model)
    macs0, params0 = tp.utils.count_ops_and_params(model, example)
    units = None
    if cfg.depth:
        from .shufflenet import drop_units

        units = drop_units(model, cfg.depth)
    ratio_dict = {_module(model, n): r for n, r in cfg.layer_ratios}
    shuffle = card.capabilities.prune == "shufflenet"  # ShuffleNetV2's channel shuffle: branch by branch
    pruner = None if shuffle else tp.pruner.MetaPruner(
        model, example, importance=make_importance(cfg.importance), global_pruning=cfg.global_pruning,
        pruning_ratio=cfg.ratio, pruning_ratio_dict=ratio_dict or None, ignored_layers=kept_layers(model, card),
        round_to=cfg.round_to)
    if needs_gradients(cfg.importance):
        if not taylor_batches:
            raise EdgekitError("--importance taylor needs gradients from real images: pass --finetune-data or "
                               "--eval-data, or choose l1")
        model.zero_grad()
        for x, y in taylor_batches:
            logits = model(torch.as_tensor(x))
            target = torch.as_tensor(y) if y is not None else logits.argmax(1)
            torch.nn.functional.cross_entropy(logits, target).backward()
    try:
        if shuffle:
            from .shufflenet import prune_branches

            prune_branches(model, cfg, make_importance(cfg.importance))
        else:
            pruner.step()
    except EdgekitError:
        raise
    except Exception as exc:
        raise EdgekitError(f"Torch-Pruning could not prune {card.name} at ratio {cfg.ratio} ({exc!r:.160}): "
                           "try a smaller --ratio or --round-to 1") from None
    model.zero_grad(set_to_none=True)
    after = channel_counts(model)
    macs1, params1 = tp.utils.count_ops_and_params(model, example)
    plan = {
        "edgekit_prune_plan": PLAN_VERSION,
        "base_model": card.name,
        "input_shape": list(input_shape),
        "config": {"ratio": cfg.ratio, "importance": importance_label(cfg.importance), "round_to": cfg.round_to,
                   "global_pruning": cfg.global_pruning, "layer_ratios": dict(cfg.layer_ratios)},
        "params": {"before": int(params0), "after": int(params1)},
        "macs": {"before": int(macs0), "after": int(macs1)},
        "layers": {n: {"kept": after[n], "of": before[n]} for n in after if after[n] != before[n]},
    }
    if units is not None:  # only then, so a plan without --depth reads as before
        plan["config"]["depth"] = cfg.depth
        plan["units"] = units
    return plan


def rebuild(model, plan: dict, card):
    """Cut a freshly built base model to the plan's widths (which channels does not matter: the pruned
    state dict loaded next fills them)."""
    import torch
    import torch_pruning as tp

    if plan.get("edgekit_prune_plan") != PLAN_VERSION:
        raise EdgekitError("not an edgekit pruning plan (or another version): re-run edgekit prune")
    if plan["base_model"] != card.name:
        raise EdgekitError(f"the plan is for {plan['base_model']}, not {card.name}: pass the matching model")
    if card.capabilities.prune == "shufflenet":
        from .shufflenet import rebuild_branches, rebuild_units

        rebuild_units(model, plan.get("units", {}))
        rebuild_branches(model, plan["layers"])
        return model
    if plan.get("units"):
        raise EdgekitError(f"the plan removes units, which {card.name} cannot: the plan is for ShuffleNetV2")
    dg = tp.DependencyGraph().build_dependency(model, torch.zeros(*plan["input_shape"]))
    for name, spec in plan["layers"].items():
        mod = _module(model, name)
        current = mod.out_channels if isinstance(mod, torch.nn.Conv2d) else mod.out_features
        if current != spec["of"] and current != spec["kept"]:
            raise EdgekitError(f"layer {name} has {current} channels, the plan expects {spec['of']}: the plan is "
                               "for another variant of the model")
        extra = current - spec["kept"]
        if extra > 0:
            fn = tp.prune_conv_out_channels if isinstance(mod, torch.nn.Conv2d) else tp.prune_linear_out_channels
            group = dg.get_pruning_group(mod, fn, idxs=list(range(spec["kept"], current)))
            group.prune()
    return model


def read_plan(path: str | Path) -> dict:
    path = Path(path)
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"{path} is not a readable pruning plan ({exc}): pass the plan.json edgekit prune "
                           "wrote") from None
    if not isinstance(plan, dict) or plan.get("edgekit_prune_plan") != PLAN_VERSION:
        raise EdgekitError(f"{path} is not an edgekit pruning plan: pass the plan.json edgekit prune wrote")
    return plan


# --- sparsity: zeros that shrink the compressed file (and feed TensorRT's 2:4 kernels) --------------------

def _eligible_24(module) -> bool:
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features % 4 == 0
    return isinstance(module, torch.nn.Conv2d) and module.groups == 1 and module.in_channels % 4 == 0


def sparsify(model, sparsity: str) -> dict:
    """``"0.8"``: zero the 80% smallest weights of every conv/linear; ``"2:4"``: two of every four
    consecutive input-channel weights, on eligible layers only (never depthwise). Returns a summary."""
    import torch

    layers = {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    touched, zeros, total = [], 0, 0
    with torch.no_grad():
        if sparsity == "2:4":
            for n, m in layers.items():
                if not _eligible_24(m):
                    continue
                w = m.weight
                # groups of 4 along the input-channel axis: (O, I, kh, kw) -> (O, kh, kw, I/4, 4)
                wt = w.permute(0, 2, 3, 1) if w.dim() == 4 else w
                g = wt.reshape(*wt.shape[:-1], wt.shape[-1] // 4, 4)
                drop = g.abs().argsort(dim=-1)[..., :2]
                mask = torch.ones_like(g).scatter_(-1, drop, 0.0).reshape(wt.shape)
                w.mul_(mask.permute(0, 3, 1, 2) if w.dim() == 4 else mask)
                touched.append(n)
        else:
            try:
                level = float(sparsity)
            except ValueError:
                level = -1.0
            if not 0.0 < level < 1.0:
                raise EdgekitError(f"--sparsity {sparsity}: give a fraction in (0, 1) such as 0.8, or 2:4")
            for n, m in layers.items():
                w = m.weight
                k = int(w.numel() * level)
                if k == 0:
                    continue
                threshold = w.abs().flatten().kthvalue(k).values
                w.mul_((w.abs() > threshold).to(w.dtype))
                touched.append(n)
        for m in layers.values():
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
    return {"pattern": sparsity, "layers": touched, "zero_fraction": zeros / total if total else 0.0}


def satisfies_24(weight) -> bool:
    """Every group of four consecutive input-channel weights has at least two zeros."""
    wt = weight.permute(0, 2, 3, 1) if weight.dim() == 4 else weight
    g = wt.reshape(*wt.shape[:-1], wt.shape[-1] // 4, 4)
    return bool(((g == 0).sum(-1) >= 2).all())


def gzip_size(state_dict) -> int:
    """Bytes of the gzip-compressed weights: the storage estimate Deep Compression's size counts rely on."""
    import torch

    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return len(gzip.compress(buf.getvalue(), compresslevel=9))
