"""A recipe from a command's arguments, so `--save-recipe` repeats the run."""

from __future__ import annotations

from ..errors import EdgekitError
from ..pipeline.request import BackendOptions
from .spec import FinetuneSpec, ProfileSpec, PruneSpec, Recipe


def from_export_request(r) -> Recipe:
    """The recipe that repeats an export: the request's own sections, whole (`--save-recipe`)."""
    return Recipe(model=r.model, weights=r.weights, num_classes=r.num_classes, out=r.out, eval_data=r.eval_data,
                  trust_checkpoint=r.trust_checkpoint, preprocess=r.preprocess, quantize=r.quantize,
                  export=r.export, backend=r.backend)


def from_prune_request(r) -> Recipe:
    """The recipe that repeats an `edgekit prune` call (its artifacts land in OUT/prune)."""
    import dataclasses

    cfg, ft = r.prune, r.finetune
    if cfg is not None and not isinstance(cfg.importance, str):
        raise EdgekitError(f"--save-recipe with a {type(cfg.importance).__name__} object as importance: a recipe "
                           "names its importance; register it (prune.importance.register_importance) and pass the "
                           "name")
    prune = PruneSpec(cfg.ratio if cfg else None, cfg.importance if cfg else "l1", cfg.round_to if cfg else 8,
                      cfg.global_pruning if cfg else False, r.sparsity,
                      dict(cfg.layer_ratios) if cfg and cfg.layer_ratios else None, cfg.depth if cfg else 0.0)
    fin = None if r.finetune_data is None else FinetuneSpec(str(r.finetune_data), **dataclasses.asdict(ft))
    return Recipe(model=r.model, weights=r.weights, num_classes=r.num_classes, out=r.out,
                  eval_data=r.eval_data, trust_checkpoint=r.trust_checkpoint, preprocess=r.preprocess, prune=prune,
                  finetune=fin, backend=BackendOptions(threads=r.threads))


def from_profile_request(r) -> Recipe:
    """The recipe that repeats an `edgekit profile` call (export of the same model, then the same profile)."""
    tm = r.timing
    return Recipe(model=r.model, weights=r.weights, num_classes=r.num_classes, out=r.out, eval_data=r.eval_data,
                  trust_checkpoint=r.trust_checkpoint, preprocess=r.preprocess,
                  backend=BackendOptions(r.backend, r.device, r.threads),
                  profile=ProfileSpec(r.eval_data, tm.batch, tm.warmup, tm.repeats))
