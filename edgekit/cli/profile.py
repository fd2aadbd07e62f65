"""`edgekit profile MODEL`: size, latency, memory and accuracy on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common as c


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)


def profile(
    model: str = typer.Argument(..., help="A .onnx file (onnxruntime), or a zoo name with --backend torch."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="onnxruntime, torch or tensorrt."),
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
) -> None:
    """Profile MODEL: size, params, MACs, latency (median/p90/p99), peak memory, accuracy or agreement."""
    from ..api import profile_model
    from ..profile import TimingOptions
    from ..report import print_table

    rep = profile_model(model, c.as_path(out), backend, device, threads, c.as_path(eval_data),
                        c.as_path(reference), TimingOptions(warmup, repeats, batch), weights, num_classes,
                        trust_checkpoint, c.overrides(input_size, resize_size, interpolation, mean, std),
                        max_images, force)
    print_table(rep)
    typer.echo(f"wrote {rep['out']}/report.json, {rep['out']}/report.md")
