"""A mobile file written by `edgekit export --format` (.tflite, .pte, .ort, .param) opened for `edgekit profile`:
its preprocessing, labels and precision come from the ``model.json`` the export wrote beside it."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import EdgekitError
from .preprocess import Preprocess
from .source import ModelSource, PreprocessOverrides

# suffix -> the backend that runs it and the input kind its BackendSpec declares
KINDS = {".tflite": ("litert", "tflite"), ".pte": ("executorch", "pte"), ".ort": ("onnxruntime", "ort"),
         ".param": ("ncnn", "ncnn")}


def kind_of(model: str) -> tuple[str, str] | None:
    """(backend, input kind) of a mobile file, or None for anything else."""
    return KINDS.get(Path(str(model)).suffix.lower())


def open_mobile(path: Path, overrides: PreprocessOverrides | None = None) -> tuple[ModelSource, dict]:
    """The file as a ModelSource (``onnx_path`` holds the file the backend runs) and what model.json says of it."""
    overrides = overrides or PreprocessOverrides()
    if not path.is_file():
        raise EdgekitError(f"{path} does not exist: pass a file written by `edgekit export --format`")
    side = path.parent / "model.json"
    try:
        doc = json.loads(side.read_text())
        entry = doc["files"].get(path.name, {})
        pre = overrides.apply(Preprocess.from_dict(doc["preprocess"]))
        source = ModelSource(doc["model"], pre, int(doc["num_classes"]), doc.get("labels"), None, path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgekitError(f"{side} is missing or unreadable ({type(exc).__name__}): edgekit reads a mobile file's "
                           "preprocessing and classes from the model.json `edgekit export --format` writes beside "
                           "it; keep them together") from None
    return source, entry
