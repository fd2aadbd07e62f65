"""`edgekit prune MODEL --ratio 0.3`: structured pruning (plan + state dict), sparsity, fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common as c


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)


def prune(
    model: str = typer.Argument(..., help="Zoo name (see `edgekit models`)."),
    weights: str = c.WeightsOpt,
    num_classes: Optional[int] = c.NumClassesOpt,
    trust_checkpoint: bool = c.TrustOpt,
    ratio: Optional[float] = typer.Option(None, "--ratio", help="Share of channels removed, in (0, 1); "
                                          "parameters fall by about 1-(1-ratio)^2."),
    importance: str = typer.Option("l1", "--importance", help="l1, l2, bn (BatchNorm scale) or taylor."),
    round_to: int = typer.Option(8, "--round-to", help="Keep channel counts multiples of this."),
    global_pruning: bool = typer.Option(False, "--global", help="Rank channels across layers, not per layer."),
    depth: float = typer.Option(0.0, "--depth", help="ShuffleNetV2: share of each stage's repeated units removed, "
                                "in [0, 1) (fewer small ops; channels as --ratio says)."),
    layer_ratio: Optional[list[str]] = typer.Option(None, "--layer-ratio", help="Per-layer ratio, NAME=RATIO "
                                                    "(repeatable)."),
    sparsity: Optional[str] = typer.Option(None, "--sparsity", help="Zero weights: a fraction (0.8) or 2:4 "
                                           "(TensorRT sparse kernels; eligible layers, never depthwise)."),
    finetune_data: Optional[Path] = typer.Option(None, "--finetune-data", help="Images for recovery fine-tuning "
                                                 "(class folders give labels; without, distillation only)."),
    epochs: int = typer.Option(5, "--epochs", help="Fine-tuning epochs."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (cosine schedule)."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or sgd."),
    batch_size: int = typer.Option(64, "--batch-size", help="Fine-tuning batch size (per process under torchrun)."),
    augment: str = typer.Option("crop-flip", "--augment", help="Augmentation of the fine-tuning images: crop-flip "
                                "(random-resized crop and flip, torchvision's recipe), flip, or none (for images "
                                "a flip changes, such as digits)."),
    eval_data: Optional[Path] = c.EvalDataOpt,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads for the latency comparison."),
    out: Optional[Path] = c.OutOpt,
    force: bool = c.ForceOpt,
    input_size: Optional[int] = c.InputSizeOpt,
    resize_size: Optional[int] = c.ResizeOpt,
    interpolation: Optional[str] = c.InterpOpt,
    mean: Optional[str] = c.MeanOpt,
    std: Optional[str] = c.StdOpt,
    save_recipe: Optional[Path] = typer.Option(None, "--save-recipe", help="Also write the recipe that repeats "
                                               "this run (`edgekit run` puts its artifacts in OUT/prune)."),
) -> None:
    """Prune MODEL's channels (Torch-Pruning), optionally fine-tune by distillation, export and compare."""
    from ..errors import EdgekitError
    from ..pipeline.prune import PruneRequest, prune_model
    from ..prune.finetune import FinetuneConfig
    from ..prune.plan import PruneConfig
    from ..report.table import print_table

    layer_ratios = []
    for item in layer_ratio or []:
        name, _, value = item.partition("=")
        try:
            layer_ratios.append((name, float(value)))
        except ValueError:
            raise EdgekitError(f"--layer-ratio {item}: use NAME=RATIO, e.g. features.3.conv.0.0=0.5") from None
    if depth and ratio is None:
        raise EdgekitError(f"--depth {depth:g} removes units alongside --ratio's channels: pass --ratio too")
    cfg = None if ratio is None else PruneConfig(ratio, importance, round_to, global_pruning, tuple(layer_ratios),
                                                  depth)
    request = PruneRequest(model, c.as_path(out), weights, num_classes, trust_checkpoint, c.as_path(eval_data), force,
                           c.overrides(input_size, resize_size, interpolation, mean, std), cfg, sparsity,
                           c.as_path(finetune_data), FinetuneConfig(epochs, optimizer, lr, batch_size=batch_size,
                                                                          augment=augment),
                           threads)
    if save_recipe is not None:
        from ..recipe.from_args import from_prune_request

        saved = from_prune_request(request)
    rep = prune_model(request)
    if rep is None:  # a torchrun process other than rank 0: rank 0 reports and writes
        return
    out = request.out_dir
    print_table(rep)
    if save_recipe is not None:
        from ..recipe.spec import save

        save(saved, save_recipe)
        typer.echo(f"wrote {save_recipe}")
    typer.echo(f"wrote {out}/plan.json, {out}/pruned_state_dict.pt, {out}/model.onnx, {out}/report.json")
