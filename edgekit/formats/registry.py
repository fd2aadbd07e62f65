"""The one table of mobile formats: a name, its file, what it is made from, the precisions it holds, and where it
runs. ``edgekit export --format`` validates against it; the stage (``pipeline/formats.py``) walks it.

Adding a format is one converter module here and one line in ``FORMATS`` (plus a backend module when its runtime
runs on this machine).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import EdgekitError


@dataclass(frozen=True)
class FormatSpec:
    name: str
    suffix: str  # the file the app loads (ncnn: .param beside its .bin; Core ML: an .mlpackage folder)
    source: str  # "torch": converted from the torch model; "onnx": from the verified ONNX file
    precisions: tuple[str, ...]  # what --int8/--fp16 can ask of it here
    extra: str | None  # edgekit's pip extra that brings its converter and runtime (None: in the default install)
    module: str  # the converter module under edgekit.formats
    backend: str | None  # the edgekit backend that runs it here; None: not run here
    purpose: str  # what a user ships it for
    not_run_reason: str = ""  # why it is not run here (a format without a backend)
    requires: tuple[str, ...] = ()  # modules its converter and runtime import
    unheld: str = ""  # why a precision it lacks is not offered


FORMATS: dict[str, FormatSpec] = {
    "tflite": FormatSpec("tflite", ".tflite", "torch", ("fp32", "int8"), "litert", "tflite", "litert",
                         "Android (LiteRT, formerly TensorFlow Lite), microcontrollers, Coral",
                         requires=("litert_torch", "ai_edge_litert"),
                         unheld="FP16 .tflite is not offered: XNNPACK runs FP32 or INT8 files on phones' CPUs"),
    "pte": FormatSpec("pte", ".pte", "torch", ("fp32", "int8"), "executorch", "pte", "executorch",
                      "Android, iOS and embedded Linux through ExecuTorch (XNNPACK delegate)", requires=("executorch",),
                      unheld="FP16 .pte is not offered: its XNNPACK delegate is lowered from FP32 or INT8 here"),
    "ort": FormatSpec("ort", ".ort", "onnx", ("fp32", "fp16", "int8"), None, "ort_mobile", "onnxruntime",
                      "ONNX Runtime Mobile on Android and iOS (a reduced build reads .ort)", requires=("onnxruntime",)),
    "ncnn": FormatSpec("ncnn", ".param", "onnx", ("fp32", "fp16"), "ncnn", "ncnn", "ncnn",
                       "ncnn on Android, iOS and ARM boards (Vulkan GPU or CPU)", requires=("pnnx", "ncnn"),
                       unheld="no ncnn INT8 here: its tools (ncnn2table, ncnn2int8) are in neither the pip wheels "
                              "nor Debian"),
    "coreml": FormatSpec("coreml", ".mlpackage", "torch", ("fp32", "fp16", "int8"), "coreml", "coreml", None,
                         "iOS and macOS (Core ML; int8 is 8-bit weights, float activations)",
                         "not run here (Core ML runs on macOS/iOS)", requires=("coremltools",)),
}
ALL = "all"


def names() -> tuple[str, ...]:
    return tuple(FORMATS)


def get(name: str) -> FormatSpec:
    if name == "onnx":
        raise EdgekitError("--format onnx: model.onnx is always written; --format adds the mobile formats: "
                           f"{', '.join(FORMATS)} or {ALL}")
    if name not in FORMATS:
        close = difflib.get_close_matches(name, [*FORMATS, ALL], n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise EdgekitError(f"--format {name}: unknown format; {hint}choose from {', '.join(FORMATS)} or {ALL}")
    return FORMATS[name]


def resolve(requested) -> tuple[str, ...]:
    """``--format`` as a tuple of known names in the table's order, or ``("all",)``; refuses an unknown name."""
    items = [requested] if isinstance(requested, str) else list(requested or ())
    wanted = [n.strip().lower() for item in items for n in str(item).split(",") if n.strip()]
    if ALL in wanted:
        return (ALL,)
    for n in wanted:
        get(n)
    return tuple(n for n in FORMATS if n in wanted)


def expand(formats: tuple[str, ...]) -> tuple[str, ...]:
    return names() if ALL in formats else tuple(formats)


def preflight(formats: tuple[str, ...]) -> None:
    """Formats named one by one need their extra: a missing one is one line with its install command, before any
    work. Under ``all``, a format whose extra is absent becomes a row that says so."""
    from .._optional import require

    if ALL in formats:
        return
    for name in formats:
        for module in FORMATS[name].requires:
            require(module, f"--format {name}")


def precision_for(spec: FormatSpec, precision: str) -> str:
    """The precision a format is written in for the export's ``precision``: FP32 always, and INT8/FP16 where the
    format holds it (the stage writes FP32 and says so otherwise)."""
    return precision if precision in spec.precisions else "fp32"


def refuse_onnx_input(formats: tuple[str, ...], model: str) -> None:
    """A format converted from the torch model cannot be made from a user's ONNX file: one line, with the fix."""
    need = [f for f in expand(formats) if FORMATS[f].source == "torch"]
    if need and str(model).lower().endswith(".onnx"):
        onnx_ok = [f for f in FORMATS if FORMATS[f].source == "onnx"]
        raise EdgekitError(f"--format {','.join(need)} converts from the torch model, not {model}: pass a zoo name "
                           f"with --weights, or ask only for {','.join(onnx_ok)} (made from ONNX)")


def package_version(pkg: str) -> str:
    """An installed distribution's version, for the report ("?" when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


@dataclass(frozen=True)
class ConvertSource:
    """What a converter reads: the torch model (torch formats) or the ONNX file of the precision asked for (ONNX
    formats: the FP32, the guarded INT8 QDQ or the FP16 file), the input shape, and metadata for formats that
    carry it (Core ML)."""

    module: object | None
    onnx_path: object | None
    input_shape: tuple
    meta: dict | None = None


def file_name(name: str, precision: str) -> str:
    """model.tflite, model_int8.tflite, model_fp16.param, model.mlpackage..."""
    return "model" + ("" if precision == "fp32" else f"_{precision}") + FORMATS[name].suffix


def convert(name: str, src: ConvertSource, path, precision: str = "fp32", int8=None) -> dict:
    """Write format ``name`` at ``path`` with its own converter; the converter's facts (tool, version, quantizer)."""
    import contextlib
    import importlib
    import sys

    spec = get(name)
    mod = importlib.import_module(f"edgekit.formats.{spec.module}")
    shape = tuple(src.input_shape)
    if spec.source == "torch" and src.module is None:
        raise EdgekitError(f"the {name} format converts from the torch model, which this export does not have")
    with contextlib.redirect_stdout(sys.stderr):  # converters print their progress; stdout carries edgekit's tables
        if name == "tflite":
            return mod.tflite_from_torch(src.module, shape, path, int8 if precision == "int8" else None)
        if name == "pte":
            return mod.pte_from_torch(src.module, shape, path, int8 if precision == "int8" else None)
        if name == "coreml":
            return mod.mlpackage_from_torch(src.module, shape, path, precision, src.meta)
        if name == "ort":
            return mod.ort_from_onnx(src.onnx_path, path)
        return mod.ncnn_from_onnx(src.onnx_path, path, shape, fp16=precision == "fp16")
