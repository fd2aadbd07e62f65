"""TensorRT's ONNX-parser rules for Q/DQ nodes, checked on a file before it is shipped or built.

The rules are the assertions of onnx-tensorrt's ``QuantDequantLinearHelper`` (onnxOpImporters.cpp; read at the
10.1 GA tag and at the newest stored main, which has ``enableUInt8AsymmetricQuantization``, FP4 and MX types) and
of ``convertAxis`` (importerUtils.cpp), plus the one TensorRT's ``addDequantize`` enforces behind them ("only
activation types allowed as input to this layer": onnx/onnx-tensorrt#850, microsoft/onnxruntime#14229). A file
that breaks one fails on the board with a parser error; here it is refused with the rule and the node instead.
Rules that exist only for FP8/INT4/FP4/MX custom ops are not checked: edgekit writes int8 Q/DQ only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import EdgekitError
from .options import GraphFacts

_SRC = "onnx-tensorrt onnxOpImporters.cpp QuantDequantLinearHelper"


@dataclass(frozen=True)
class Violation:
    node: str
    op: str
    rule: str

    def line(self) -> str:
        return f"node {self.node} ({self.op}): {self.rule}"


def _consts(model) -> dict:
    """Initializers and Constant-node outputs by name (the parser reads both as weights)."""
    out = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = a.t
    return out


def _types_and_shapes(model) -> tuple[dict, dict]:
    """Element type and shape (None for symbolic dims) of every tensor shape inference can name."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference cannot read: fall back to what the file declares
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({i.name: i.data_type for i in g.initializer})
    return types, {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
                   for v in [*g.value_info, *g.input, *g.output]} | {i.name: list(i.dims) for i in g.initializer}


def violations(model) -> list[Violation]:
    """Every Q/DQ node of ``model`` that TensorRT's ONNX parser would refuse, with the rule it breaks."""
    from onnx import TensorProto
    from onnx import numpy_helper as nh

    consts = _consts(model)
    types, shapes = _types_and_shapes(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    out: list[Violation] = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        bad = lambda rule, n=n: out.append(Violation(n.name or n.output[0], n.op_type, f"{rule} [{_SRC}]"))  # noqa: E731
        attrs = {a.name: a for a in n.attribute}
        if len(n.input) < 2 or not n.input[1]:
            bad("needs at least 2 inputs (data and scale)")
            continue
        data_t = types.get(n.input[0])
        if n.op_type == "DequantizeLinear" and data_t == TensorProto.UINT8:
            bad("uint8 DequantizeLinear input: TensorRT refuses UINT8 unless the DLA-only asymmetric flag is set "
                "(checkNotInvalidType(inputs.at(0), {\"UINT8\"}))")
        elif n.op_type == "DequantizeLinear" and data_t is not None and data_t not in (
                TensorProto.INT8, TensorProto.FLOAT8E4M3FN, TensorProto.INT4, TensorProto.FLOAT4E2M1):
            bad(f"{TensorProto.DataType.Name(data_t).lower()} DequantizeLinear input (a quantized bias?): TensorRT's "
                "Dequantize takes INT8/FP8/INT4/FP4 only (\"only activation types allowed as input to this layer\", "
                "onnx/onnx-tensorrt#850): quantize without int32 biases (QuantizeBias off)")
        scale = consts.get(n.input[1])
        sv = nh.to_array(scale) if scale is not None else None
        if sv is not None:
            if sv.size == 0:
                bad("scale with no coefficients (\"Cannot have scale with no coefficients\")")
            elif scale.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16):
                bad(f"{TensorProto.DataType.Name(scale.data_type).lower()} scale: the parser checks float, half or "
                    "bfloat16 scales only and refuses others (\"Scale coefficients must all be positive\")")
            elif not (sv > 0).all():
                bad(f"non-positive scale ({float(sv.min()):g}): \"Scale coefficients must all be positive\"")
        zp = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        zp_t = zp.data_type if zp is not None else (types.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None)
        if zp_t == TensorProto.UINT8:
            bad("uint8 zero point (asymmetric uint8 Q/DQ): 10.1's parser refuses it (notInvalidType(inputs.at(2), "
                "{\"UINT8\"})), later ones read it as INT8, which changes the values: export with --target tensorrt")
        elif zp is not None and zp_t == TensorProto.INT8 and nh.to_array(zp).any():
            bad("non-zero int8 zero point: \"TensorRT only supports symmetric quantization\" (shiftIsAllZeros)")
        if zp is not None and sv is not None and nh.to_array(zp).size != sv.size:
            bad(f"zero point of {nh.to_array(zp).size} values for {sv.size} scales (\"The scale and zero point must "
                "have the same volume\")")
        if "output_dtype" in attrs and zp_t is not None and attrs["output_dtype"].i != zp_t:
            bad("output_dtype differs from the zero point's type (\"Mismatch between attribute output_dtype and "
                "zero-point data type\")")
        if n.op_type == "DequantizeLinear" and "precision" in attrs:
            bad("precision attribute on DequantizeLinear (\"Attribute precision can only be used with "
                "QuantizeLinear\")")
        _axis_rules(n, attrs, sv, shapes.get(n.input[0]), opset, bad)
    return out


def _axis_rules(n, attrs: dict, sv, data_shape, opset: int, bad) -> None:
    """convertAxis: a given axis lies in [-rank, rank]; a per-channel 1-D scale has
    as many values as the data has along that axis ("The number of scales is not equal to the number of output
    channels"); a scale of the data's rank blocks one dimension only; any other scale rank is refused."""
    if sv is None or data_shape is None:
        return
    rank = len(data_shape)
    axis = attrs["axis"].i if "axis" in attrs else (1 if opset >= 13 else 0)
    if "axis" in attrs and not -rank <= axis <= rank:
        bad(f"axis {axis} outside [0, {rank}] for a rank-{rank} input (convertAxis, importerUtils.cpp)")
        return
    if sv.size == 1:
        return
    if sv.ndim == 1:
        if "axis" not in attrs:
            bad("per-channel scale without an axis attribute: TensorRT 10.1 reads it as axis 0 and later parsers "
                "as ONNX's default 1; give the axis")
            return
        k = data_shape[axis % rank] if axis < rank else None
        if k is not None and k != sv.size:
            bad(f"{sv.size} per-channel scales for {k} channels on axis {axis} (\"The number of scales is not equal "
                "to the number of output channels\")")
    elif sv.ndim == rank:
        blocked = [d // s for d, s in zip(data_shape, sv.shape) if d]
        if sum(b != 1 for b in blocked) > 1:
            bad("a block-quantized scale blocks more than one dimension (\"Only a single blocking dimension is "
                "allowed\")")
    else:
        bad(f"scale of rank {sv.ndim} for a rank-{rank} input (\"Invalid rank for the scale tensor\")")


def check(path: str | Path, model=None) -> None:
    """Refuse, in one line naming the file, the first node TensorRT's parser would refuse."""
    if model is None:
        from ...graph.info import load_checked

        model = load_checked(path)
    found = violations(model)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise EdgekitError(f"{Path(path).name} would not parse in TensorRT: {found[0].line()}{more}; export it "
                           "again with --int8 --target tensorrt (or edgekit's --target jetson)")


def graph_facts(onnx_path: Path) -> GraphFacts:
    """Precision, Q/DQ count, parser-rule conformance and the input of an ONNX file."""
    from ...graph.info import io_shapes, load_checked, read_meta

    m = load_checked(onnx_path)
    q = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    name, shape, _, _ = io_shapes(m)
    precision = read_meta(m).get("precision") or ("int8" if q else "fp32")
    return GraphFacts(precision, len(q), not violations(m) if q else True, name, tuple(shape))
