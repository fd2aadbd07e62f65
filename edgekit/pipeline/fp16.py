"""The FP16 stage of an export: convert, then refuse a graph that drifts from FP32."""

from __future__ import annotations

from pathlib import Path

from ..measure.facts import artifact_facts
from ..measure.quality import outcomes


def fp16_stage(tmp: Path, fp32_path: Path, images, meta: dict, progress) -> dict:
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..graph.export import write_onnx_with_meta
    from ..graph.info import load_checked
    from ..quantize.fp16 import fp16_from_onnx
    fp16_path = tmp / "model_fp16.onnx"
    fp16_from_onnx(fp32_path, fp16_path)
    write_onnx_with_meta(load_checked(fp16_path), fp16_path, {**meta, "precision": "fp16"})
    with OnnxRuntimeRunner(fp32_path) as ref, OnnxRuntimeRunner(fp16_path) as r:
        ag = outcomes([ref, r], images, reference=0, progress=progress, desc="FP16 against FP32")[1].agreement()
    if not ag["mean_cosine"] >= 0.999:  # written so that a NaN (inf logits in half precision) fails too
        from ..errors import VerificationError

        raise VerificationError(f"the FP16 graph drifts from FP32 (mean cosine {ag['mean_cosine']:.5f} < 0.999): "
                                "the model overflows in half precision; keep FP32 for this model")
    return {"file": fp16_path.name, "artifact": artifact_facts(fp16_path), "agreement_with_fp32": ag,
            "size_ratio_to_fp32": fp16_path.stat().st_size / fp32_path.stat().st_size, "io_types": "float32"}
