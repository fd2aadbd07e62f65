"""A tiny convolutional net, identical in torch and ONNX, for round trips on every backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """A conv-relu-conv-relu-pool-linear classifier's weights (3x32x32 in, 10 classes)."""
    rng = np.random.default_rng(seed)
    w = lambda *s: (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    return {"c1.weight": w(8, 3, 3, 3), "c1.bias": w(8, 1)[:, 0], "c2.weight": w(16, 8, 3, 3),
            "c2.bias": w(16, 1)[:, 0], "fc.weight": w(10, 16), "fc.bias": w(10, 1)[:, 0]}


def tiny_torch(weights: dict[str, np.ndarray]):
    import torch
    from torch import nn

    model = nn.Sequential()
    model.add_module("c1", nn.Conv2d(3, 8, 3, padding=1))
    model.add_module("r1", nn.ReLU())
    model.add_module("c2", nn.Conv2d(8, 16, 3, stride=2, padding=1))
    model.add_module("r2", nn.ReLU())
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(16, 10))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval()


def tiny_onnx(weights: dict[str, np.ndarray], path: Path) -> Path:
    """The same classifier written with onnx.helper: what a board without torch round-trips."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h = helper.make_node
    nodes = [h("Conv", ["input", "c1.weight", "c1.bias"], ["a"], pads=[1, 1, 1, 1]), h("Relu", ["a"], ["b"]),
             h("Conv", ["b", "c2.weight", "c2.bias"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             h("Relu", ["c"], ["d"]), h("GlobalAveragePool", ["d"], ["e"]), h("Flatten", ["e"], ["f"]),
             h("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "doctor", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                              [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
