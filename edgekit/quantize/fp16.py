"""FP16 weights and compute in the graph, with float32 inputs and outputs."""

from __future__ import annotations

from pathlib import Path

from .ort import _quiet


def fp16_from_onnx(fp32_path: Path, out_path: Path, keep_io_types: bool = True) -> None:
    """FP16 weights and compute in the graph (what TensorRT 11 needs), float32 inputs/outputs by default."""
    import onnx

    # onnxruntime ships the converter of onnxconverter-common; no extra dependency for the same code
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    from ..graph.info import topological_sort

    with _quiet():
        half = convert_float_to_float16(model, keep_io_types=keep_io_types)
    topological_sort(half)  # the converter appends its input casts at the end of the node list
    onnx.save(half, str(out_path))
