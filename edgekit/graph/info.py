"""Facts read from an ONNX graph: parameters, MACs, op counts, and edgekit's own metadata."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import EdgekitError, first_line

META_KEY = "edgekit"


def load_checked(path: str | Path):
    """Load and check an ONNX file, or fail with one line naming it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"ONNX file {path} not found: pass an existing .onnx file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise EdgekitError(f"{path} is not a valid ONNX model ({first_line(exc, 120)}): re-export it") from None
    return model


def read_meta(model) -> dict:
    for p in model.metadata_props:
        if p.key == META_KEY:
            return json.loads(p.value)
    return {}


def write_meta(model, meta: dict) -> None:
    for p in list(model.metadata_props):
        if p.key == META_KEY:
            model.metadata_props.remove(p)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)


def op_counts(model) -> dict[str, int]:
    return dict(Counter(n.op_type for n in model.graph.node))


def count_params(model) -> int:
    """Elements in floating-point and integer initializers (biases included), excluding Q/DQ scales."""
    import onnx

    qparams = set()
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            qparams.update(n.input[1:])
    shape_inputs = set()
    for n in model.graph.node:
        if n.op_type in ("Reshape", "Resize", "Slice", "Pad", "Expand", "Tile", "Unsqueeze", "Squeeze"):
            shape_inputs.update(n.input[1:])
    total = 0
    for init in model.graph.initializer:
        if init.name in qparams or init.name in shape_inputs:
            continue
        if init.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and len(init.dims) <= 1:
            continue
        total += int(np.prod(init.dims)) if init.dims else 1
    return total


def count_macs(model) -> int | None:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul at the graph's static input shape.

    None when some weighted node's shapes cannot be inferred even by onnxruntime's symbolic inference (e.g.
    "same" padding computed at run time): a partial count would understate the model by orders of magnitude.
    """
    from onnx import shape_inference

    macs, missing = _macs(shape_inference.infer_shapes(model))
    if missing:
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            macs, missing = _macs(SymbolicShapeInference.infer_shapes(_batch_one(model), auto_merge=True))
        except Exception:  # the symbolic pass gives up on some graphs; then the count is unknown
            return None
    return None if missing else macs


def _batch_one(model):
    import copy

    m = copy.deepcopy(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    return m


def _macs(inferred) -> tuple[int, int]:
    """(MACs, number of weighted nodes whose shapes are unknown) of a shape-inferred graph."""
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if dims and dims[0] is None:
            dims[0] = 1  # a symbolic batch counts as 1
        if None not in dims:  # a symbolic height or width leaves the shape unknown, not 1
            shapes[vi.name] = dims
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    # Weights that sit behind DequantizeLinear keep their shape through it.
    for n in inferred.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in shapes:
            shapes.setdefault(n.output[0], shapes[n.input[0]])
    macs = missing = 0
    for n in inferred.graph.node:
        if n.op_type in ("Conv", "ConvTranspose"):
            w, out = shapes.get(n.input[1]), shapes.get(n.output[0])
            if w is None or out is None:
                missing += 1
                continue
            if n.op_type == "Conv":
                macs += int(np.prod(out)) * int(np.prod(w[1:]))
            else:
                inp = shapes.get(n.input[0])
                macs += int(np.prod(inp)) * int(np.prod(w[1:])) if inp else 0
        elif n.op_type in ("Gemm", "MatMul"):
            a, out = shapes.get(n.input[0]), shapes.get(n.output[0])
            if a is None or out is None:
                missing += 1
                continue
            trans_a = next((x.i for x in n.attribute if x.name == "transA"), 0) if n.op_type == "Gemm" else 0
            k = a[-2] if trans_a else a[-1]
            macs += int(np.prod(out)) * int(k)
    return macs, missing


def io_shapes(model) -> tuple[str, list, str, list]:
    """Name and shape (None for symbolic dims) of the single image input and the logits output."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise EdgekitError(f"edgekit takes classifiers with one image input; this graph has {len(inputs)} inputs")

    def dims(vi):
        return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]

    return inputs[0].name, dims(inputs[0]), model.graph.output[0].name, dims(model.graph.output[0])


def topological_sort(model) -> None:
    """Reorder graph nodes so each comes after its inputs' producers (some converters append nodes)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise EdgekitError(f"graph {graph.name!r} has a cycle or a missing input at node {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
