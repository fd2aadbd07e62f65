"""What an engine's layers run in, from TensorRT's engine inspector JSON: pure functions, testable without a GPU.

The inspector gives per-layer precision and device only for engines built with
``profiling_verbosity = DETAILED``; without it, DLA fallback and silently-FP32 layers cannot be seen. Its schema
changed between majors, and both are read here:

- 10.x: ``{"Layers": [...], "Bindings": [...]}``; a tensor's type is inside one ``"Format/Datatype"`` string
  ("Thirty-two wide channel vectorized row major Int8 format"); weights are ``"Weights": {"Type": "Int8"}``
  (the developer guide's Engine Inspector example; trt-engine-explorer's test inputs in NVIDIA/TensorRT).
- 11.x: ``"Bindings"`` became ``"I/O Tensors"`` and ``"Format/Datatype"`` is split into ``"Format"`` and
  ``"DataType"`` (NVIDIA's "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x"); constants are listed as
  ``"Constants"`` tensor descriptors (the trt-perf-analysis skill's schema, NVIDIA/TensorRT 11.1). The layer list
  may also be the JSON root itself.

A Myelin-compiled subgraph can show as one ``{ForeignNode[first...last]}`` layer of type ``Myelin`` whose inputs
and outputs are only the subgraph's boundary (NVIDIA/TensorRT#4397): the INT8 layers inside cannot be seen, and
such a layer is counted apart ("opaque") rather than as the FP32 of its boundary.
"""

from __future__ import annotations

import re

# layers that only move or relabel data: counted apart, never as the engine's compute precision
_BOOKKEEPING = {"Reformat", "NoOp", "Constant", "Shuffle", "Identity", "Shape", "Slice", "Concatenation", "reshape",
                "shape_call", "signal", "wait"}
_DTYPES = (("int8", ("int8",)), ("fp8", ("fp8",)), ("bf16", ("bfloat16", "bf16")), ("fp16", ("fp16", "half")),
           ("fp32", ("fp32", "float")), ("int32", ("int32",)), ("int64", ("int64",)), ("bool", ("bool",)))
_RANK = ["int8", "fp8", "fp16", "bf16", "fp32"]  # a layer with several float inputs runs in its narrowest


def _dtype(text: str) -> str:
    """The data type in an inspector format or type string ("Channel major FP16 format where channel % 8 == 0",
    "Thirty-two wide channel vectorized row major Int8 format", "Row major linear FP32", "Half", "Int8", ...)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    for name, keys in _DTYPES:
        if any(k in words for k in keys):
            return name
    return "unknown"


def tensor_dtype(t: dict) -> str:
    """A tensor descriptor's type: 11.x's ``DataType`` (or ``Datatype``) first, then 10.x's ``Format/Datatype``,
    then 11.x's ``Format``."""
    for key in ("DataType", "Datatype", "Format/Datatype", "Format"):
        if isinstance(t.get(key), str):
            got = _dtype(t[key])
            if got != "unknown":
                return got
    return "unknown"


def _layers_of(info) -> list:
    if isinstance(info, list):
        return info
    return info.get("Layers", []) if isinstance(info, dict) else []


def is_opaque(layer: dict) -> bool:
    """A Myelin ForeignNode: one layer standing for a compiled subgraph whose precision the inspector hides."""
    return str(layer.get("LayerType", "")) == "Myelin" or (
        str(layer.get("Name", "")).startswith("{ForeignNode[") and str(layer.get("LayerType", "")) != "DLA")


def layer_precision(layer: dict) -> str:
    """Its weights' type when it has weights (10.x ``Weights``, 11.x ``Constants``), else the narrowest float
    type among its inputs (a Myelin gemm lists its weights among them), else its first input's type."""
    weights = layer.get("Weights") if isinstance(layer.get("Weights"), dict) else {}
    if weights.get("Type"):
        got = _dtype(str(weights["Type"]))
        if got != "unknown":
            return got
    consts = [tensor_dtype(c) for c in layer.get("Constants", []) if isinstance(c, dict)]
    inputs = [tensor_dtype(t) for t in layer.get("Inputs", []) if isinstance(t, dict)]
    floats = [d for d in consts + inputs if d in _RANK]
    if floats:
        return min(floats, key=_RANK.index)
    return inputs[0] if inputs else "unknown"


def layer_summary(info) -> dict:
    """Per-layer precision and device counts from the engine inspector's JSON (built with DETAILED).

    DLA subgraphs are layers of type "DLA". Without DETAILED the inspector gives names only, and nothing can be
    said: ``detailed`` is then False. Myelin ForeignNode layers are counted in ``opaque`` with their names.
    """
    layers = _layers_of(info)
    if not layers or not all(isinstance(la, dict) for la in layers):
        return {"detailed": False, "layers": len(layers), "precision": {}, "device": {}, "bookkeeping": 0,
                "opaque": [], "gpu_layers": []}
    precision: dict[str, int] = {}
    device: dict[str, int] = {}
    gpu_layers, opaque, bookkeeping = [], [], 0
    for la in layers:
        kind = str(la.get("LayerType", ""))
        on = "DLA" if kind == "DLA" else "GPU"
        device[on] = device.get(on, 0) + 1
        if on == "GPU" and not (kind in _BOOKKEEPING or str(la.get("ParameterType", "")) in _BOOKKEEPING):
            gpu_layers.append(str(la.get("Name", "?")))
        if kind in _BOOKKEEPING or str(la.get("ParameterType", "")) in _BOOKKEEPING:
            bookkeeping += 1
            continue
        if is_opaque(la):
            opaque.append(str(la.get("Name", "?")))
            continue
        p = layer_precision(la)
        precision[p] = precision.get(p, 0) + 1
    return {"detailed": True, "layers": len(layers), "precision": dict(sorted(precision.items())),
            "device": dict(sorted(device.items())), "bookkeeping": bookkeeping, "opaque": opaque,
            "gpu_layers": gpu_layers}


def precision_failures(summary: dict, precision: str, device: str) -> list[str]:
    """What the engine does not do that the build asked for: an INT8 or FP16 engine with no layer of its kind,
    a DLA build with no DLA layer. Others shipped "FP16" engines with no half-precision layer at 4.6x the latency.
    Layers hidden in a Myelin ForeignNode are not held against it (see ``hidden_note``)."""
    if not summary["detailed"]:
        return [f"the engine inspector gave layer names only ({summary['layers']} layers): cannot check precision"]
    out = []
    counts = summary["precision"]
    if precision in ("int8", "fp16") and not counts.get(precision) and not summary.get("opaque"):
        got = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        out.append(f"asked for {precision.upper()} but no layer runs in {precision.upper()} (layers: {got})")
    if device == "DLA" and not summary["device"].get("DLA"):
        out.append("asked for the DLA but no layer runs on it (all fell back to the GPU)")
    return out


def hidden_note(summary: dict, precision: str) -> str | None:
    """Said in the report when the asked-for precision is visible nowhere because Myelin hides it."""
    if summary.get("opaque") and precision in ("int8", "fp16") and not summary["precision"].get(precision):
        names = ", ".join(summary["opaque"][:2])
        return (f"no layer visibly runs in {precision.upper()}: {len(summary['opaque'])} Myelin ForeignNode "
                f"layer(s) ({names[:160]}) hide their precision; the agreement check is what vouches for the engine")
    return None
