"""Params and MACs counted from hand-checkable graphs."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.graph.info import count_macs, count_params, op_counts


def _model():
    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    dw = numpy_helper.from_array(np.ones((8, 1, 3, 3), np.float32), "dw")
    fc = numpy_helper.from_array(np.ones((8, 10), np.float32), "fc")
    shape = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "dw"], ["c2"], group=8, pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["y"]),
    ]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, b, dw, fc, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_counts_are_exact():
    m = _model()
    onnx.checker.check_model(m)
    assert count_params(m) == 8 * 27 + 8 + 8 * 9 + 80
    # conv: 8x16x16 outputs x 27; depthwise stride 2: 8x8x8 outputs x 9; matmul: 10 outputs x 8
    assert count_macs(m) == 8 * 256 * 27 + 8 * 64 * 9 + 80
    assert op_counts(m) == {"Conv": 2, "GlobalAveragePool": 1, "Reshape": 1, "MatMul": 1}


def test_symbolic_dims_batch_counts_as_one_spatial_is_unknown():
    def with_input(dims):
        m = _model()
        m.graph.input[0].type.tensor_type.shape.Clear()
        for d in dims:
            dim = m.graph.input[0].type.tensor_type.shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d
        return m

    assert count_macs(with_input(["N", 3, 16, 16])) == 8 * 256 * 27 + 8 * 64 * 9 + 80
    # a symbolic height and width were once counted as 1: 16x16 times too few MACs, silently
    assert count_macs(with_input(["N", 3, "H", "W"])) is None
