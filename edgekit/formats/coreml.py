"""Core ML (.mlpackage) from the torch model with coremltools: an ML program for iOS 17+ / macOS 14+.

Written and read back here, never run: Core ML predicts only on macOS and iOS. FP32 and FP16 compute; "int8" is
coremltools' 8-bit per-channel weight quantization (activations stay float: quantizing them needs a run on a
Mac). The labels and preprocessing go in the package's own metadata (``user_defined_metadata``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .._optional import require
from ..errors import EdgekitError, first_line
from .registry import package_version


def mlpackage_from_torch(module, input_shape, path: Path, precision: str = "fp32", meta: dict | None = None) -> dict:
    """Write the ``path`` folder (an .mlpackage); ``meta`` (labels, preprocessing) goes into its metadata."""
    torch = require("torch")
    ct = require("coremltools", "the coreml format")
    example = (torch.zeros(tuple(input_shape), dtype=torch.float32),)
    compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
    try:
        program = torch.export.export(module.eval(), example).run_decompositions({})
        ml = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                        inputs=[ct.TensorType(name="input", shape=tuple(input_shape))],
                        outputs=[ct.TensorType(name="logits")], compute_precision=compute)
        temps = [ml]
        if precision == "int8":
            from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

            cfg = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
            ml = linear_quantize_weights(ml, config=OptimizationConfig(global_config=cfg))
            temps.append(ml)
    except Exception as exc:  # an op Core ML cannot hold: the row says which
        raise EdgekitError(f"coremltools cannot convert the model to {path.name}: {first_line(exc, 200)}") from None
    for k, v in (meta or {}).items():
        ml.user_defined_metadata[k] = v if isinstance(v, str) else json.dumps(v)
    ml.short_description = "edgekit export: logits; preprocessing and labels in the metadata"
    tmp = path.with_name(f".{path.stem}.tmp.mlpackage")
    shutil.rmtree(tmp, ignore_errors=True)
    ml.save(str(tmp))
    os.replace(tmp, path)
    for m in temps:  # coremltools keeps each model's package in the system temp folder until the interpreter exits
        if getattr(m, "is_temp_package", False) and m.package_path:
            shutil.rmtree(m.package_path, ignore_errors=True)
    return {"converter": f"coremltools {package_version('coremltools')} (mlprogram, iOS17)",
            "quantizer": "coremltools linear_quantize_weights (8-bit per-channel weights)" if precision == "int8"
            else None}


def read_spec(path: Path) -> dict:
    """What coremltools' spec reader finds in the package (no prediction: that needs macOS)."""
    ct = require("coremltools", "reading a Core ML package")
    spec = ct.utils.load_spec(str(path))
    desc = spec.description
    return {"spec_version": int(spec.specificationVersion),
            "inputs": [{"name": i.name, "shape": list(i.type.multiArrayType.shape)} for i in desc.input],
            "outputs": [o.name for o in desc.output], "ml_program": spec.WhichOneof("Type") == "mlProgram",
            "metadata": dict(desc.metadata.userDefined)}
