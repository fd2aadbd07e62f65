"""The automatic choice: selection as pure functions, and one real `--optimize latency` run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import DIGITS_FLAGS

from edgekit.errors import BudgetExceededError, EdgekitError
from edgekit.optimize import Candidate, Measured, candidates, choose


def _m(name, ms, size, drop):
    return Measured(Candidate(name, "onnxruntime", "int8"), ms, size, 90.0 - drop, drop)


def test_choose_fastest_within_budget():
    ms = [_m("a", 1.0, 100, 2.0), _m("b", 1.5, 50, 0.4), _m("c", 2.0, 10, 0.0)]
    assert choose(ms, 0.5).candidate.name == "b"  # a is faster but over budget
    assert choose(ms, 5.0).candidate.name == "a"
    assert choose(ms, 0.5, "size").candidate.name == "c"


def test_ties_and_errors():
    tie = [_m("z", 1.0, 100, 0.1), _m("y", 1.0, 80, 0.1), _m("x", 1.0, 80, 0.1)]
    assert choose(tie, 1.0).candidate.name == "x"  # equal latency: smaller file, then the name
    with pytest.raises(BudgetExceededError, match=r"no candidate is within --max-drop 0.1: the closest, b, loses 0.40"):
        choose([_m("a", 1.0, 1, 2.0), _m("b", 1.0, 1, 0.4)], 0.1)
    with pytest.raises(EdgekitError, match="choose latency or size"):
        choose(tie, 1.0, "energy")
    with pytest.raises(EdgekitError, match="no candidate"):
        choose([], 1.0)


def test_candidate_sets():
    names = [c.name for c in candidates("squeezenet", ["onnxruntime"])]
    assert names == ["onnxruntime-fp32", "onnxruntime-int8", "onnxruntime-int8-s8", "onnxruntime-int8-no-depthwise"]
    mb = [c.name for c in candidates("mobilenet", ["onnxruntime", "openvino"], nncf=True)]
    assert "onnxruntime-int8-no-act-se" in mb and "openvino-fp32" in mb and mb[-1] == "openvino-int8-nncf"


def test_optimize_latency_end_to_end(digits, digits_model, cli, tmp_path):
    out = tmp_path / "o"
    code, stdout, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--optimize", "latency",
                            "--max-drop", "1", "--eval-data", digits[1], "--max-images", "120", "--calib-data",
                            digits[0], "--calib-size", "64", "--threads", "2", "--out", out,
                            "--calib-cache", tmp_path / "c.json", *DIGITS_FLAGS)
    assert code == 0, err
    o = json.loads((out / "report.json").read_text())["optimize"]
    cands = o["candidates"]
    assert {c["name"] for c in cands} >= {"onnxruntime-fp32", "onnxruntime-int8"}
    assert all(c["latency_ms"] > 0 and len(c["sweeps_ms"]) == 3 for c in cands)
    ok = [c for c in cands if c["drop"] <= 1.0]
    ch = o["choice"]
    assert ch["latency_ms"] == min(c["latency_ms"] for c in ok) and ch["drop"] <= 1.0
    assert (out / ch["file"]).exists() and f"candidate {ch['name']}" in stdout
    if ch["file"].endswith(".onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out / ch["file"]))
        assert sess.run(None, {"input": np.zeros((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_openvino_runner_agrees_with_onnxruntime(digits, digits_model, digits_pre, tmp_path):
    pytest.importorskip("openvino", reason="install edgekit[openvino] for the OpenVINO backend")
    from edgekit.api import export_model
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.backends.openvino import OpenVINORunner
    from edgekit.data import load_array, scan
    from edgekit.source import PreprocessOverrides
    from edgekit.stats import agreement

    export_model("mobilenet_v2", tmp_path / "m", str(digits_model[0]),
                 overrides=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3))
    x, _ = load_array(scan(digits[1], num_classes=10).subset(range(40)), digits_pre)
    with OnnxRuntimeRunner(tmp_path / "m" / "model.onnx") as r:
        ref = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
    with OpenVINORunner(tmp_path / "m" / "model.onnx", threads=1) as r:
        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
    ag = agreement(got, ref)
    assert ag["top1_agreement"] == 100.0 and ag["max_abs_diff"] < 1e-3
