"""`edgekit export MODEL`: a verified ONNX file and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common as c


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    model: str = typer.Argument(..., help="Zoo name (see `edgekit models`) or a .onnx file."),
    weights: str = c.WeightsOpt,
    num_classes: Optional[int] = c.NumClassesOpt,
    trust_checkpoint: bool = c.TrustOpt,
    eval_data: Optional[Path] = c.EvalDataOpt,
    out: Optional[Path] = c.OutOpt,
    force: bool = c.ForceOpt,
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch axis dynamic."),
    opset: int = typer.Option(18, "--opset", min=17, help="ONNX opset (>= 17)."),
    atol: float = typer.Option(1e-4, "--atol", help="Absolute tolerance of the ONNX vs torch check."),
    rtol: float = typer.Option(1e-3, "--rtol", help="Relative tolerance (x max |logit|) of that check."),
    max_images: Optional[int] = c.MaxImagesOpt,
    input_size: Optional[int] = c.InputSizeOpt,
    resize_size: Optional[int] = c.ResizeOpt,
    interpolation: Optional[str] = c.InterpOpt,
    mean: Optional[str] = c.MeanOpt,
    std: Optional[str] = c.StdOpt,
) -> None:
    """Export MODEL to ONNX (simplified with onnxslim), checked against torch on real images."""
    from ..api import export_model
    from ..export import Tolerance
    from ..report import print_table

    out = out or Path("edgekit-out") / Path(model).stem
    rep = export_model(model, out, weights, c.as_path(eval_data), num_classes, trust_checkpoint,
                       c.overrides(input_size, resize_size, interpolation, mean, std), dynamic_batch, opset,
                       Tolerance(atol, rtol), max_images, force)
    print_table(rep)
    typer.echo(f"wrote {out}/model.onnx, {out}/report.json, {out}/report.md")
