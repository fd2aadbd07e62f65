"""`--format` fed bad input: an unknown name (did you mean), a torch-only format asked of an ONNX file, a missing
extra (one line with its pip command, before any work), and a format that cannot hold one of the model's ops (a
row with the reason, the other formats written, exit 1 as the export's help says)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit._optional import available
from edgekit.errors import EdgekitError

X = ["export", "squeezenet1_1", "--weights", "random", "--input-size", "32"]


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_format_says_did_you_mean(cli, tmp_path):
    code, _, err = cli(*X, "--format", "tflite,nccn", "--out", tmp_path / "o")
    assert code == 2 and "--format nccn: unknown format; did you mean ncnn?" in one_line(err)
    assert not (tmp_path / "o").exists()
    code, _, err = cli(*X, "--format", "tflit", "--out", tmp_path / "o")
    assert code == 2 and "did you mean tflite?" in one_line(err) and "choose from tflite, pte, ort, ncnn, coreml" in err


def test_unknown_format_refused_when_the_request_is_built():
    from edgekit.api import ExportRequest, GraphOptions

    with pytest.raises(EdgekitError, match="--format pt: unknown format; did you mean pte?"):
        ExportRequest("mobilenet_v2", export=GraphOptions(formats=("pt",)))
    assert ExportRequest("mobilenet_v2", export=GraphOptions(formats=("ALL",))).export.formats == ("all",)
    with pytest.raises(EdgekitError, match="--format onnx: model.onnx is always written"):
        GraphOptions(formats=("onnx",))


def test_torch_format_from_an_onnx_input_is_one_line(cli, tmp_path):
    from edgekit.backends.tiny import tiny_onnx, tiny_weights

    onnx_path = tiny_onnx(tiny_weights(), tmp_path / "tiny.onnx")
    code, _, err = cli("export", onnx_path, "--format", "ort,pte,tflite", "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and f"--format tflite,pte converts from the torch model, not {onnx_path}" in line
    assert "ask only for ort,ncnn (made from ONNX)" in line and not (tmp_path / "o").exists()


def test_missing_extra_is_one_line_with_its_pip_command(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    code, _, err = cli(*X, "--format", "tflite", "--out", tmp_path / "o")
    line = one_line(err)
    assert code == 2 and "litert_torch is not installed for --format tflite: pip install 'litert-torch" in line
    assert "(edgekit's [litert] extra)" in line and "edgekit[" not in line and not (tmp_path / "o").exists()


def _classifier_with(op: str, path):
    """A 3x32x32 classifier whose logits pass through ``op``: onnxruntime runs it; ncnn has no layer for it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["a"], ["b"]), helper.make_node("Flatten", ["b"], ["c"]),
             helper.make_node("Gemm", ["c", "fc"], ["d"], transB=1), helper.make_node(op, ["d"], ["logits"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnx

    onnx.save(model, str(path))
    return path


def test_a_format_that_cannot_hold_an_op_is_a_row_and_exit_1(cli, tmp_path):
    if not (available("ncnn") and available("pnnx")):
        pytest.skip("ncnn, pnnx not installed (edgekit's [ncnn] extra)")
    model = _classifier_with("ThresholdedRelu", tmp_path / "odd.onnx")
    code, out, err = cli("export", model, "--format", "ort,ncnn", "--out", tmp_path / "o", "--threads", "1")
    assert code == 1, err
    rows = {r["format"]: r for r in json.loads((tmp_path / "o" / "report.json").read_text())["formats"]["rows"]}
    assert rows["ort"]["status"] == "checked" and rows["ort"]["check"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "o" / "mobile" / "model.ort").exists()
    assert rows["ncnn"]["status"] == "failed" and "ncnn has no ThresholdedRelu layer" in rows["ncnn"]["reason"]
    assert not (tmp_path / "o" / "mobile" / "model.param").exists()  # no half-kept file of a failed format
    assert "1 format(s) failed" in err and "ncnn fp32: ncnn has no ThresholdedRelu layer" in err
    assert "ncnn has no ThresholdedRelu" in out  # the table's row says why
