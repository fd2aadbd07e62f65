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
    cfg, ft = r.prune, r.finetune
    if cfg is not None and cfg.layer_ratios:
        raise EdgekitError("--save-recipe with --layer-ratio: recipes take one global ratio")
    prune = PruneSpec(cfg.ratio if cfg else None, cfg.importance if cfg else "l1", cfg.round_to if cfg else 8,
                      cfg.global_pruning if cfg else False, r.sparsity)
    fin = None if r.finetune_data is None else FinetuneSpec(str(r.finetune_data), ft.epochs, ft.lr, ft.optimizer,
                                                            ft.batch_size)
    return Recipe(model=r.model, weights=r.weights, num_classes=r.num_classes, out=str(r.out_dir),
                  eval_data=r.eval_data, trust_checkpoint=r.trust_checkpoint, preprocess=r.preprocess, prune=prune,
                  finetune=fin, backend=BackendOptions(threads=r.threads))


def from_profile_request(r) -> Recipe:
    """The recipe that repeats an `edgekit profile` call (export of the same model, then the same profile)."""
    tm = r.timing
    return Recipe(model=r.model, weights=r.weights, num_classes=r.num_classes, out=r.out, eval_data=r.eval_data,
                  trust_checkpoint=r.trust_checkpoint, preprocess=r.preprocess,
                  backend=BackendOptions(r.backend, r.device, r.threads),
                  profile=ProfileSpec(r.eval_data, tm.batch, tm.warmup, tm.repeats))
