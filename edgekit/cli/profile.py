"""`edgekit profile MODEL`: size, latency, memory and accuracy on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common as c


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)


def profile(
    model: str = typer.Argument(..., help="A .onnx file (onnxruntime), a mobile file from `edgekit export --format` "
                                "(.tflite, .pte, .ort, .param: its own runtime), or a zoo name with --backend torch."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="onnxruntime, openvino, torch, tensorrt, "
                                "litert, executorch or ncnn (a mobile file picks its own)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, or tensorrt (onnxruntime's TensorRT EP)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Intra-op threads (default: runtime's)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Also measure this batch size (dynamic-batch models)."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs before timing."),
    repeats: int = typer.Option(100, "--repeats", min=3, help="Timed runs; the median is reported."),
    eval_data: Optional[Path] = c.EvalDataOpt,
    reference: Optional[Path] = typer.Option(None, "--reference",
                                             help="A .onnx to compare against (top-1 agreement, cosine)."),
    max_images: Optional[int] = c.MaxImagesOpt,
    out: Optional[Path] = c.OutOpt,
    force: bool = c.ForceOpt,
    weights: str = c.WeightsOpt,
    num_classes: Optional[int] = c.NumClassesOpt,
    trust_checkpoint: bool = c.TrustOpt,
    input_size: Optional[int] = c.InputSizeOpt,
    resize_size: Optional[int] = c.ResizeOpt,
    interpolation: Optional[str] = c.InterpOpt,
    mean: Optional[str] = c.MeanOpt,
    std: Optional[str] = c.StdOpt,
    save_recipe: Optional[Path] = typer.Option(None, "--save-recipe", help="Also write the recipe that repeats "
                                               "this profile (`edgekit run`: export, then the same profile)."),
) -> None:
    """Profile MODEL: size, params, MACs, latency (median/p90/p99), peak memory, accuracy or agreement."""
    from ..measure.timing import TimingOptions
    from ..pipeline.profile import ProfileRequest, profile_model
    from ..report.table import print_table

    request = ProfileRequest(model, c.as_path(out), backend, device, threads, c.as_path(eval_data),
                             c.as_path(reference), TimingOptions(warmup, repeats, batch), weights, num_classes,
                             trust_checkpoint, c.overrides(input_size, resize_size, interpolation, mean, std),
                             max_images, force)
    if save_recipe is not None:
        from ..errors import EdgekitError
        from ..recipe.from_args import from_profile_request

        if reference is not None or max_images is not None:
            raise EdgekitError("--save-recipe with --reference or --max-images: recipes profile the whole "
                               "--eval-data without a reference")
        saved = from_profile_request(request)
    rep = profile_model(request)
    if rep is None:  # a torchrun process other than rank 0: it evaluated its shard; rank 0 reports and writes
        return
    print_table(rep)
    if save_recipe is not None:
        from ..recipe.spec import save

        save(saved, save_recipe)
        typer.echo(f"wrote {save_recipe}")
    typer.echo(f"wrote {rep['out']}/report.json, {rep['out']}/report.md")
