"""Small real ONNX classifiers for the double's tests: a conv net over 3x32x32 (the digits' preprocessed size), in
FP32 or FP16, static or dynamic batch, and its TensorRT-form INT8 file made by edgekit's own quantizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def classifier(path: Path, dynamic: bool = False, fp16: bool = False, classes: int = 10, seed: int = 0) -> Path:
    """Conv 3->8 (3x3) + Relu + GlobalAveragePool + Flatten + Gemm 8->classes, edgekit's metadata included."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    ft = np.float16 if fp16 else np.float32
    et = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(ft) * ft(0.5), "w1"),
             numpy_helper.from_array(rng.standard_normal(8).astype(ft) * ft(0.1), "b1"),
             numpy_helper.from_array(rng.standard_normal((classes, 8)).astype(ft), "fc"),
             numpy_helper.from_array(rng.standard_normal(classes).astype(ft) * ft(0.1), "fcb")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("GlobalAveragePool", ["r1"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"], name="fc", transB=1)]
    batch = "N" if dynamic else 1
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", et, [batch, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", et, [batch, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    from edgekit.graph.export import write_onnx_with_meta

    write_onnx_with_meta(model, path, {"model": "tiny", "precision": "fp16" if fp16 else "fp32",
                                       "num_classes": classes, "pretrained": False})
    return path


def tensorrt_int8(fp32: Path, out: Path, seed: int = 1) -> Path:
    """edgekit's own TensorRT-target INT8 file of ``fp32`` (symmetric int8 Q/DQ), calibrated on random images."""
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard

    x = np.random.default_rng(seed).standard_normal((16, 3, 32, 32)).astype(np.float32)
    quantize_with_guard(fp32, out, QuantConfig(target="tensorrt"), x, out.with_suffix(".calib.json"), "k")
    return out


def images(n: int = 8, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dt = np.float16 if sess.get_inputs()[0].type == "tensor(float16)" else np.float32
    return np.concatenate([sess.run(None, {"input": x[i:i + 1].astype(dt)})[0] for i in range(len(x))]).astype(
        np.float32)
