"""A recipe from a command's arguments, so `--save-recipe` repeats the run."""

from __future__ import annotations

from ..errors import EdgekitError
from .spec import BackendSpec, ExportSpec, FinetuneSpec, PreprocessSpec, ProfileSpec, PruneSpec, QuantizeSpec, Recipe


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
