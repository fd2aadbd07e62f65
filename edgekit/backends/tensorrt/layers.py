"""What an engine's layers run in, from TensorRT's engine inspector JSON: pure functions, testable without a GPU.

The inspector gives per-layer precision and device only for engines built with
``profiling_verbosity = DETAILED``; without it, DLA fallback and silently-FP32 layers cannot be seen.
"""

from __future__ import annotations

import re

# layers that only move or relabel data: counted apart, never as the engine's compute precision
_BOOKKEEPING = {"Reformat", "NoOp", "Constant", "Shuffle", "Identity", "Shape", "Slice", "Concatenation"}
_DTYPES = (("int8", ("int8",)), ("fp8", ("fp8",)), ("bf16", ("bfloat16", "bf16")), ("fp16", ("fp16", "half")),
           ("fp32", ("fp32", "float")), ("int32", ("int32",)), ("int64", ("int64",)), ("bool", ("bool",)))


def _dtype(fmt: str) -> str:
    """The data type in an inspector "Format/Datatype" ("Channel major FP16 format where channel % 8 == 0",
    "Thirty-two wide channel vectorized row major Int8 format", "Row major linear FP32", "Half", ...)."""
    words = re.findall(r"[a-z0-9]+", fmt.lower())
    for name, keys in _DTYPES:
        if any(k in words for k in keys):
            return name
    return "unknown"


def layer_summary(info: dict) -> dict:
    """Per-layer precision and device counts from the engine inspector's JSON (built with DETAILED).

    A layer's precision is its weights' type when it has weights, else its first input's data type (as
    NVIDIA's trt-engine-explorer reads it); DLA subgraphs are layers of type "DLA". Without DETAILED the
    inspector gives names only, and nothing can be said: ``detailed`` is then False.
    """
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    if not layers or not all(isinstance(la, dict) for la in layers):
        return {"detailed": False, "layers": len(layers), "precision": {}, "device": {}, "bookkeeping": 0,
                "gpu_layers": []}
    precision: dict[str, int] = {}
    device: dict[str, int] = {}
    gpu_layers, bookkeeping = [], 0
    for la in layers:
        kind = str(la.get("LayerType", ""))
        on = "DLA" if kind == "DLA" else "GPU"
        device[on] = device.get(on, 0) + 1
        if kind in _BOOKKEEPING or str(la.get("ParameterType", "")) in _BOOKKEEPING:
            bookkeeping += 1
            continue
        weights = la.get("Weights") if isinstance(la.get("Weights"), dict) else {}
        inputs = [t for t in la.get("Inputs", []) if isinstance(t, dict)]
        p = _dtype(str(weights.get("Type", ""))) if weights.get("Type") else "unknown"
        if p == "unknown" and inputs:
            p = _dtype(str(inputs[0].get("Format/Datatype", "")))
        precision[p] = precision.get(p, 0) + 1
        if on == "GPU":
            gpu_layers.append(str(la.get("Name", "?")))
    return {"detailed": True, "layers": len(layers), "precision": dict(sorted(precision.items())),
            "device": dict(sorted(device.items())), "bookkeeping": bookkeeping, "gpu_layers": gpu_layers}


def precision_failures(summary: dict, precision: str, device: str) -> list[str]:
    """What the engine does not do that the build asked for: an INT8 or FP16 engine with no layer of its kind,
    a DLA build with no DLA layer. Others shipped "FP16" engines with no half-precision layer at 4.6x the latency."""
    if not summary["detailed"]:
        return [f"the engine inspector gave layer names only ({summary['layers']} layers): cannot check precision"]
    out = []
    counts = summary["precision"]
    if precision in ("int8", "fp16") and not counts.get(precision):
        got = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        out.append(f"asked for {precision.upper()} but no layer runs in {precision.upper()} (layers: {got})")
    if device == "DLA" and not summary["device"].get("DLA"):
        out.append("asked for the DLA but no layer runs on it (all fell back to the GPU)")
    return out
