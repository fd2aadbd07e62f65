"""ONNX Runtime Mobile (.ort) from the verified ONNX file, with onnxruntime's own converter
(``onnxruntime.tools.convert_onnx_models_to_ort``); it also writes ``required_operators.config``, the op list a
reduced mobile build of onnxruntime is compiled with. The INT8 (QDQ) and FP16 ONNX files convert the same way."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .._optional import require
from ..errors import EdgekitError, first_line
from .registry import package_version


def ort_from_onnx(onnx_path: Path, path: Path, target_platform: str = "arm") -> dict:
    """Write ``path`` (.ort) and ``<stem>.required_operators.config`` beside it. ``target_platform`` arm: the
    phone's layout (x86 would add NCHWc kernels a phone lacks); the file still runs on x86 here."""
    tools = require("onnxruntime.tools.convert_onnx_models_to_ort", "the ort format")
    OptimizationStyle, convert_onnx_models_to_ort = tools.OptimizationStyle, tools.convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory(prefix=".ort-", dir=path.parent) as d:
        src = Path(d) / "in" / f"{path.stem}.onnx"
        src.parent.mkdir()
        shutil.copyfile(onnx_path, src)
        try:
            convert_onnx_models_to_ort(src.parent, Path(d) / "out", [OptimizationStyle.Fixed],
                                       target_platform=target_platform)
        except Exception as exc:
            raise EdgekitError(f"onnxruntime cannot convert {onnx_path.name} to .ort: {first_line(exc, 200)}") \
                from None
        made = Path(d) / "out" / f"{path.stem}.ort"
        config = Path(d) / "out" / "required_operators.config"
        if not made.exists():
            raise EdgekitError(f"onnxruntime wrote no {made.name} for {onnx_path.name}: convert it by hand with "
                               "python -m onnxruntime.tools.convert_onnx_models_to_ort to see why")
        os.replace(made, path)
        if config.exists():
            os.replace(config, path.with_name(f"{path.stem}.required_operators.config"))
    return {"converter": f"onnxruntime {package_version('onnxruntime')} convert_onnx_models_to_ort "
                         f"(fixed, {target_platform})", "quantizer": None}
