"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..models.source import PreprocessOverrides

WeightsOpt = typer.Option("imagenet", "--weights", "-w",
                          help="'imagenet' (torchvision's, via the torch hub cache), 'random', or a checkpoint "
                               "path (state dict, checkpoint dict, TorchScript).")
NumClassesOpt = typer.Option(None, "--num-classes", help="Override the class count read from the checkpoint.")
TrustOpt = typer.Option(False, "--trust-checkpoint",
                        help="Allow a whole pickled model: unpickling runs code from the file, so only for "
                             "files you trust.")
EvalDataOpt = typer.Option(None, "--eval-data", help="Folder of images; class sub-folders give labels.")
OutOpt = typer.Option(None, "--out", "-o", help="Output folder (refused if it exists, unless --force).")
ForceOpt = typer.Option(False, "--force", help="Replace an existing output folder.")
MaxImagesOpt = typer.Option(None, "--max-images", help="Use at most this many images, spread over the folder.")
InputSizeOpt = typer.Option(None, "--input-size", help="Square input size (the crop); default from the model card.")
ResizeOpt = typer.Option(None, "--resize-size", help="Shorter side before the centre crop.")
InterpOpt = typer.Option(None, "--interpolation", help="nearest, bilinear or bicubic.")
MeanOpt = typer.Option(None, "--mean", help="Three comma-separated channel means on the 0..1 scale.")
StdOpt = typer.Option(None, "--std", help="Three comma-separated channel stds on the 0..1 scale.")


def triple(text: Optional[str], what: str):
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise typer.BadParameter(f"{what} needs three comma-separated numbers, e.g. 0.485,0.456,0.406")
    return vals


def overrides(input_size, resize_size, interpolation, mean, std) -> PreprocessOverrides:
    return PreprocessOverrides(input_size, resize_size, interpolation, triple(mean, "--mean"), triple(std, "--std"))


def as_path(p: Optional[Path]) -> Optional[str]:
    return None if p is None else str(p)


def names(text: Optional[str]) -> tuple[str, ...]:
    """A comma-separated option as a tuple of non-empty names."""
    return tuple(t.strip() for t in (text or "").split(",") if t.strip())


def floats(text: str, what: str) -> tuple[float, ...]:
    """A comma-separated option of numbers, e.g. 0.25,0.5."""
    try:
        return tuple(float(t) for t in names(text))
    except ValueError:
        raise typer.BadParameter(f"{what} {text}: give comma-separated numbers, e.g. 0.25,0.5") from None


def backend_options(threads: Optional[int]):
    """The CPU backend options of a command that only sets threads."""
    from ..pipeline.request import BackendOptions

    return BackendOptions(threads=threads)
