"""The fake engine inspector's JSON, in the two schemas NVIDIA's own sources show.

10.x (the developer guide's "Engine Inspector" example, and trt-engine-explorer's test inputs in NVIDIA/TensorRT,
tools/experimental/trt-engine-explorer/tests/inputs/*.graph.json): ``{"Layers": [...], "Bindings": [names]}``; each
tensor has one ``"Format/Datatype"`` string ("Thirty-two wide channel vectorized row major Int8 format"); weights
are ``"Weights": {"Type": "Int8", "Count": n}``. A Myelin subgraph shows as one ``{ForeignNode[first...last]}``
layer of type ``Myelin`` whose inputs and outputs are its boundary tensors (NVIDIA/TensorRT#4397), and a DLA
subgraph as a ``{ForeignNode[...]}`` layer of type ``DLA``.

11.x (NVIDIA's "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x"): ``"Bindings"`` became ``"I/O
Tensors"`` (objects with ``DataType``, ``Format``, ``Dimensions``), and a tensor's ``"Format/Datatype"`` is split
into ``"Format"`` and ``"DataType"``. Constants appear as a ``"Constants"`` list of tensor descriptors (the schema
of NVIDIA's trt-perf-analysis skill in the TensorRT 11.1 repository). No full 11.x layer dump was found in NVIDIA's
sources, so the 11.x layer shape here is assembled from those two documents.
"""

from __future__ import annotations

import json

FORMATS = {"int8": ("Thirty-two wide channel vectorized row major Int8 format", "Int8"),
           "fp16": ("Channel major FP16 format where channel % 8 == 0", "Half"),
           "fp32": ("Row major linear FP32", "Float")}
LAYER_TYPES = {"Conv": ("CaskConvolution", "Convolution"), "Gemm": ("CaskGemmMatrixMultiply", "MatrixMultiply"),
               "MatMul": ("CaskGemmMatrixMultiply", "MatrixMultiply"), "GlobalAveragePool": ("CaskPooling", "Pooling"),
               "MaxPool": ("CaskPooling", "Pooling"), "AveragePool": ("CaskPooling", "Pooling")}


def _tensor(name: str, dims, precision: str, major: int, dynamic: bool) -> dict:
    fmt, dtype = FORMATS[precision]
    if dynamic:
        fmt = "N/A due to dynamic shapes"
    t = {"Name": name, "Location": "Device", "Dimensions": list(dims)}
    if major >= 11:
        return {**t, "Format": fmt, "DataType": "N/A" if dynamic else dtype}
    return {**t, "Format/Datatype": fmt}


def layers(header: dict, major: int, shapes: dict | None, myelin: bool) -> list:
    """The engine's layers as the inspector lists them (DETAILED)."""
    prec = header["precision"]
    inp = next(t for t in header["io"] if t["mode"] == "INPUT")
    dims = (shapes or {}).get(inp["name"], inp["shape"])
    dynamic = -1 in dims
    fmt_in = "fp32" if inp["elem"] == 1 else "fp16"
    compute = [(n, op) for n, op in header["nodes"] if op not in ("QuantizeLinear", "DequantizeLinear",
                                                                     "Flatten", "Reshape", "Identity")]
    out = []
    if prec == "int8":
        out.append({"Name": f"Reformatting CopyNode for Input Tensor 0 to {compute[0][0]}", "LayerType": "Reformat",
                    "Inputs": [_tensor(inp["name"], dims, fmt_in, major, dynamic)],
                    "Outputs": [_tensor(inp["name"] + "_q", dims, "int8", major, dynamic)],
                    "ParameterType": "Reformat", "Origin": "QDQ", "TacticValue": "0x0000000000000000"})
    if myelin and header["device"] == "GPU":
        first, last = compute[0][0], compute[-1][0]
        return out + [{"Name": f"{{ForeignNode[{first}...{last}]}}", "LayerType": "Myelin",
                       "Inputs": [_tensor(inp["name"], dims, fmt_in, major, dynamic)],
                       "Outputs": [_tensor("logits", [dims[0], -1], "fp32", major, dynamic)],
                       "TacticValue": "0x0000000000000000", "StreamId": 0, "Metadata": ""}]
    dla_names = [n for n, op in compute if op in {"Conv", "Relu", "Clip", "Add", "MaxPool", "AveragePool"}] \
        if header["device"] == "DLA" else []
    if dla_names:
        out.append({"Name": f"{{ForeignNode[{dla_names[0]}...{dla_names[-1]}]}}", "LayerType": "DLA",
                    "Inputs": [_tensor(inp["name"], dims, prec, major, dynamic)],
                    "Outputs": [_tensor("dla_out", dims, prec, major, dynamic)], "TacticValue": "0x0000000000000003"})
    for name, op in compute:
        if name in dla_names or op not in LAYER_TYPES:
            continue
        kind, param = LAYER_TYPES[op]
        layer = {"Name": name, "LayerType": kind, "Inputs": [_tensor(name + "_in", dims, prec, major, dynamic)],
                 "Outputs": [_tensor(name + "_out", dims, prec, major, dynamic)], "ParameterType": param}
        if op in ("Conv", "Gemm", "MatMul"):
            wtype = FORMATS[prec][1]
            if major >= 11:
                layer["Constants"] = [{"Name": name + ".weight", "Dimensions": [8, 8], "DataType": wtype,
                                       "Format": FORMATS[prec][0]}]
            else:
                layer["Weights"] = {"Type": wtype, "Count": 64}
                layer["Bias"] = {"Type": "Float", "Count": 8}
        layer["TacticValue"] = "0x00000000000003e8"
        out.append(layer)
    return out


def engine_information(header: dict, major: int, shapes: dict | None, myelin: bool) -> str:
    names_only = header["verbosity"] != 2
    ls = layers(header, major, shapes, myelin)
    if header["verbosity"] == 1:  # ProfilingVerbosity.NONE
        ls = []
    elif names_only:
        ls = [la["Name"] for la in ls]
    io = [t["name"] for t in header["io"]]
    if major >= 11:
        fmt = {1: "Float", 10: "Half"}
        return json.dumps({"Layers": ls, "I/O Tensors": [
            {"Name": t["name"], "IOMode": t["mode"].title(), "DataType": fmt.get(t["elem"], "Float"),
             "Dimensions": t["shape"], "Location": "Device", "IsShapeInferenceIO": False} for t in header["io"]]})
    return json.dumps({"Layers": ls, "Bindings": io})
