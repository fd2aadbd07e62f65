"""TensorRT's ONNX-parser rules for Q/DQ (onnx-tensorrt's QuantDequantLinearHelper), checked on a file before it is
shipped: each rule refuses a file that breaks it, with the rule and the node, and edgekit's own TensorRT-target INT8
file passes them all."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gpu_double.models import classifier, images  # noqa: E402

from edgekit.backends.tensorrt.onnx_rules import check, graph_facts, violations  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402


def _qdq(zp_type=None, zp=0, scale=(0.1,), axis=None, data_type=None, op="DequantizeLinear", shape=(4, 3, 3, 3)):
    """One weight DequantizeLinear feeding nothing else: the smallest file the parser rules read."""
    from onnx import TensorProto, helper, numpy_helper

    dt = {None: np.int8, TensorProto.INT32: np.int32, TensorProto.UINT8: np.uint8}[data_type]
    inits = [numpy_helper.from_array(np.ones(shape, dt), "w"),
             numpy_helper.from_array(np.asarray(scale, np.float32).reshape(-1) if len(scale) > 1 else
                                     np.float32(scale[0]), "s")]
    ins = ["w", "s"]
    if zp_type is not None:
        zdt = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT32: np.int32}[zp_type]
        z = np.full(len(scale), zp, zdt) if len(scale) > 1 else zdt(zp)
        inits.append(numpy_helper.from_array(np.asarray(z), "z"))
        ins.append("z")
    attrs = {} if axis is None else {"axis": axis}
    node = helper.make_node(op, ins, ["out"], name="the_node", **attrs)
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))
    g = helper.make_graph([node], "g", [], [out], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def _rules(model) -> list[str]:
    return [v.line() for v in violations(model)]


def test_int32_bias_dequantize_is_refused():
    """onnxruntime's default quantizes biases to int32 behind a DequantizeLinear; TensorRT refuses it ("only
    activation types allowed as input to this layer")."""
    from onnx import TensorProto

    (line,) = _rules(_qdq(TensorProto.INT32, data_type=TensorProto.INT32, shape=(8,)))
    assert line.startswith("node the_node (DequantizeLinear): int32 DequantizeLinear input (a quantized bias?)")
    assert "onnx/onnx-tensorrt#850" in line and "QuantDequantLinearHelper" in line


def test_nonzero_int8_zero_point_is_refused():
    from onnx import TensorProto

    (line,) = _rules(_qdq(TensorProto.INT8, zp=3))
    assert "non-zero int8 zero point: \"TensorRT only supports symmetric quantization\"" in line
    assert _rules(_qdq(TensorProto.INT8, zp=0)) == []


def test_uint8_negative_scales_and_per_channel_rules():
    from onnx import TensorProto

    assert "uint8 DequantizeLinear input" in _rules(_qdq(TensorProto.UINT8, zp=128, data_type=TensorProto.UINT8))[0]
    assert "uint8 zero point" in _rules(_qdq(TensorProto.UINT8, zp=0, op="QuantizeLinear", data_type=None))[0]
    assert "non-positive scale (-0.1)" in _rules(_qdq(scale=(-0.1,)))[0]
    assert _rules(_qdq(scale=(0.1,) * 4, axis=0)) == []  # per-channel over the 4 output channels
    assert "3 per-channel scales for 4 channels on axis 0" in _rules(_qdq(scale=(0.1,) * 3, axis=0))[0]
    assert "per-channel scale without an axis attribute" in _rules(_qdq(scale=(0.1,) * 4))[0]
    assert "axis 7 outside [0, 4]" in _rules(_qdq(scale=(0.1,) * 4, axis=7))[0]
    from onnx import numpy_helper

    m = _qdq(scale=(0.1,) * 4, axis=0)  # 4 scales, one zero point
    m.graph.initializer.append(numpy_helper.from_array(np.asarray(0, np.int8), "z"))
    m.graph.node[0].input.append("z")
    assert "zero point of 1 values for 4 scales" in _rules(m)[0]


def test_edgekit_tensorrt_int8_passes_and_cpu_int8_is_refused(tmp_path):
    """edgekit's own TensorRT-target INT8 file passes every rule; onnxruntime's defaults (what --target cpu writes)
    break them: uint8 activations and int32 biases."""
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard

    onnx_path = classifier(tmp_path / "m.onnx")
    x = images(16)
    quantize_with_guard(onnx_path, tmp_path / "trt.onnx", QuantConfig(target="tensorrt"), x, tmp_path / "a.json", "k")
    check(tmp_path / "trt.onnx")
    facts = graph_facts(tmp_path / "trt.onnx")
    assert facts.symmetric and facts.qdq_nodes > 0
    quantize_with_guard(onnx_path, tmp_path / "cpu.onnx", QuantConfig(target="cpu"), x, tmp_path / "b.json", "k")
    found = _rules(__import__("onnx").load(str(tmp_path / "cpu.onnx")))
    assert any("uint8" in f for f in found) and any("int32 DequantizeLinear" in f for f in found)
    assert not graph_facts(tmp_path / "cpu.onnx").symmetric
    with pytest.raises(EdgekitError, match=r"^cpu\.onnx would not parse in TensorRT: node \S+ \((Quantize|Dequantize)"
                                           r"Linear\): .* \(and \d+ more\); export it again with --int8 --target "
                                           r"tensorrt"):
        check(tmp_path / "cpu.onnx")
    # the int32 biases alone (conv and Gemm), everything else in TensorRT's form: refused by the bias rule
    cfg = QuantConfig(target="tensorrt", extra=(("QuantizeBias", True),))
    quantize_with_guard(onnx_path, tmp_path / "bias.onnx", cfg, x, tmp_path / "c.json", "k")
    found = _rules(__import__("onnx").load(str(tmp_path / "bias.onnx")))
    assert [f.split(" (")[0] for f in found] == ["node b1_DequantizeLinear", "node fcb_DequantizeLinear"]
    assert all("int32 DequantizeLinear input (a quantized bias?)" in f for f in found)


def test_the_parser_s_other_assertions():
    """Scales from Constant nodes, too few inputs, empty or double scales, output_dtype against the zero point,
    precision on a DequantizeLinear, block scales and scale ranks."""
    from onnx import TensorProto, helper, numpy_helper

    m = _qdq(scale=(0.1,))
    s = m.graph.initializer[1]
    m.graph.initializer.remove(s)
    m.graph.node.insert(0, helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(
        np.float32(-1.0), "s")))
    assert "non-positive scale (-1)" in _rules(m)[0]  # a Constant node's scale is read like an initializer
    short = _qdq()
    del short.graph.node[0].input[1:]
    assert "needs at least 2 inputs" in _rules(short)[0]
    empty = _qdq()
    empty.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.zeros(0, np.float32), "s"))
    assert "scale with no coefficients" in _rules(empty)[0]
    double = _qdq()
    double.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.float64(0.1), "s"))
    assert "double scale: the parser checks float, half or bfloat16 scales only" in _rules(double)[0]
    dtype = _qdq(TensorProto.INT8, zp=0)
    dtype.graph.node[0].attribute.append(helper.make_attribute("output_dtype", TensorProto.UINT8))
    assert "output_dtype differs from the zero point's type" in _rules(dtype)[0]
    prec = _qdq()
    prec.graph.node[0].attribute.append(helper.make_attribute("precision", TensorProto.FLOAT16))
    assert "precision attribute on DequantizeLinear" in _rules(prec)[0]
    block = _qdq(shape=(4, 4))
    block.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.full((2, 2), 0.1, np.float32), "s"))
    assert "blocks more than one dimension" in _rules(block)[0]
    one_block = _qdq(shape=(4, 4))
    one_block.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.full((4, 2), 0.1, np.float32), "s"))
    assert _rules(one_block) == []
    rank3 = _qdq(shape=(4, 4))
    rank3.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.full((1, 1, 4), 0.1, np.float32), "s"))
    assert "scale of rank 3 for a rank-2 input" in _rules(rank3)[0]
    assert _rules(_qdq(scale=(0.1,), axis=1)) == []  # a per-tensor scale with an axis in range


def test_a_tensor_whose_shape_nothing_says_is_checked_for_the_rest():
    """A Q/DQ after an op shape inference cannot follow (a custom domain): its type rules hold, its axis rules
    have nothing to read."""
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        [helper.make_node("Custom", ["x"], ["y"], domain="com.example"),
         helper.make_node("QuantizeLinear", ["y", "s", "z"], ["q"], name="q", axis=0)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("q", TensorProto.INT8, None)],
        [numpy_helper.from_array(np.full(4, 0.1, np.float32), "s"), numpy_helper.from_array(np.zeros(4, np.int8), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.example", 1)])
    assert _rules(m) == []
    m.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.ones(4, np.int8), "z"))
    assert "non-zero int8 zero point" in _rules(m)[0]
