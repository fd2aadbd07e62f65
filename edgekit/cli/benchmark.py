"""`edgekit benchmark MODEL`: every format written, checked and timed here, in one table, with its JSON and a
Pareto chart (the side-by-side `yolo benchmark` users know, with accuracy or agreement on every row)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _common as c


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)


def benchmark(
    model: str = typer.Argument(..., help="Zoo name (see `edgekit models`) or a .onnx file (ONNX formats only)."),
    formats: str = typer.Option("all", "--format", help="Formats to compare (comma-separated, or all)."),
    weights: str = c.WeightsOpt,
    num_classes: Optional[int] = c.NumClassesOpt,
    trust_checkpoint: bool = c.TrustOpt,
    eval_data: Optional[Path] = c.EvalDataOpt,
    max_images: Optional[int] = c.MaxImagesOpt,
    out: Optional[Path] = c.OutOpt,
    force: bool = c.ForceOpt,
    int8: bool = typer.Option(False, "--int8", help="Also INT8 where the format holds it, under the accuracy guard."),
    fp16: bool = typer.Option(False, "--fp16", help="Also FP16 where the format holds it."),
    calib_data: Optional[Path] = typer.Option(None, "--calib-data", help="Calibration images (see export)."),
    calib_size: int = typer.Option(512, "--calib-size", help="Calibration images to use."),
    max_drop: Optional[str] = typer.Option(None, "--max-drop", help="INT8 budget in top-1 points (default 1)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads for every runtime."),
    input_size: Optional[int] = c.InputSizeOpt,
    resize_size: Optional[int] = c.ResizeOpt,
    interpolation: Optional[str] = c.InterpOpt,
    mean: Optional[str] = c.MeanOpt,
    std: Optional[str] = c.StdOpt,
) -> None:
    """Export MODEL to every format, check each against torch where its runtime runs, and time them in one table
    (OUT/benchmark.json, OUT/pareto.png; a failed format is a row with its reason, and the exit stays 0)."""
    from ..errors import BudgetExceededError
    from ..fsutil import write_json
    from ..pipeline.export import export_model
    from ..pipeline.request import ExportRequest, GraphOptions, QuantizeOptions, parse_max_drop, precision_of
    from ..report.compare import plot
    from ..report.formats import points, print_formats

    request = ExportRequest(
        model, c.as_path(out) or str(Path("edgekit-out") / f"benchmark-{Path(model).stem}"), weights, num_classes,
        trust_checkpoint, c.as_path(eval_data), force, c.overrides(input_size, resize_size, interpolation, mean, std),
        GraphOptions(max_images=max_images, formats=c.names(formats)),
        QuantizeOptions(precision_of(int8, fp16), calib_data=c.as_path(calib_data), calib_size=calib_size,
                        max_drop=parse_max_drop(max_drop)),
        c.backend_options(threads))
    try:
        rep = export_model(request)
    except BudgetExceededError as exc:  # a failed or over-budget format is a row of the table, not the end of it
        if exc.report is None or "formats" not in exc.report:
            raise
        rep = exc.report
    section, folder = rep["formats"], request.out_dir
    print_formats(section)
    labelled = bool(rep.get("accuracy")) and isinstance(next(iter(rep["accuracy"].values()), None), dict)
    doc = {"model": rep["model"], "precision": rep["precision"], "images": rep["images"],
           "metric": "top-1 %" if labelled else "top-1 agreement with torch %", "rows": section["rows"],
           "environment": rep["environment"], "notes": rep["notes"]}
    write_json(folder / "benchmark.json", doc)
    written = [f"{folder}/benchmark.json"]
    pts = points(section, labelled)
    if pts:
        plot(pts, folder / "pareto.png")
        written.append(f"{folder}/pareto.png")
    typer.echo(f"wrote {', '.join(written)}, {folder}/mobile/ (files), {folder}/report.json")
