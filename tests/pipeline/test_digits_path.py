"""The whole CPU path on a model trained in this session on real data (scikit-learn's digits)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import DIGITS_FLAGS


@pytest.fixture(scope="module")
def exported(digits, digits_model, tmp_path_factory):
    """`edgekit export mobilenet_v2 --weights ckpt --eval-data test` run once for this module."""
    import sys

    from edgekit.cli import main

    out = tmp_path_factory.mktemp("exp") / "mnv2"
    argv = ["edgekit", "export", "mobilenet_v2", "--weights", str(digits_model[0]), "--eval-data",
            str(digits[1]), "--out", str(out), "--dynamic-batch", *DIGITS_FLAGS]
    old, sys.argv = sys.argv, argv
    try:
        main()
    finally:
        sys.argv = old
    return out, json.loads((out / "report.json").read_text())


def test_export_keeps_accuracy(exported):
    out, rep = exported
    acc_t, acc_o = rep["accuracy"]["torch"], rep["accuracy"]["onnxruntime"]
    assert acc_t["n"] == 359
    # 359 images: 1 image = 0.28 points. The committed model scores 97.21% (349/359); 95% leaves 8 images for
    # another CPU's float kernels. ONNX Runtime vs torch: at most one image apart (verification wants 100% agreement)
    assert acc_t["top1"] >= 95.0, "see tests/assets/make_digits_model.py"
    assert abs(acc_t["top1"] - acc_o["top1"]) <= 0.3
    v = rep["verification"]
    assert v["passed"] and v["top1_agreement"] == 100.0 and v["max_abs_diff"] < 1e-3
    assert rep["images"]["converted_to_rgb"] == {"L": 359}  # the digits are greyscale PNGs
    assert rep["artifact"]["bytes"] == (out / "model.onnx").stat().st_size
    assert rep["model"]["num_classes"] == 10 and rep["input_shape"] == [1, 3, 32, 32]
    for key in ("torch", "onnx", "onnxruntime", "python"):
        assert key in rep["environment"]["versions"]
    md = (out / "report.md").read_text()
    assert f"{acc_o['top1']:.2f}%" in md


def test_onnx_carries_preprocessing_and_matches_torch(exported, digits_model, digits_pre, digits):
    import onnx

    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.data.images import load_array, scan
    from edgekit.graph.info import read_meta

    out, _ = exported
    meta = read_meta(onnx.load(out / "model.onnx"))
    assert meta["preprocess"] == digits_pre.to_dict() and meta["num_classes"] == 10
    x, _ = load_array(scan(digits[1], num_classes=10).subset(range(0, 359, 10)), digits_pre)
    with torch.no_grad():
        ref = digits_model[1](torch.from_numpy(x)).numpy()
    with OnnxRuntimeRunner(out / "model.onnx", threads=1) as r:
        got = r.infer(x)  # dynamic batch: the whole set in one call
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)


def test_profile_reports_same_accuracy(exported, digits, cli, tmp_path):
    out, rep = exported
    code, stdout, err = cli("profile", out / "model.onnx", "--eval-data", digits[1], "--threads", "2",
                            "--batch", "8", "--repeats", "20", "--out", tmp_path / "p")
    assert code == 0, err
    prof = json.loads((tmp_path / "p" / "report.json").read_text())
    assert prof["accuracy"]["onnxruntime"]["top1"] == pytest.approx(rep["accuracy"]["onnxruntime"]["top1"])
    assert set(prof["latency"]) == {"batch1", "batch8"}
    assert prof["latency"]["batch8"]["batch"] == 8 and prof["latency"]["batch1"]["n"] == 20
    assert prof["backend"]["threads"] == 2 and prof["environment"]["threads"] == 2
    assert prof["memory"]["peak_rss_mb"] > 0
    assert prof["precision"] == "fp32" and prof["model"]["name"] == "mobilenet_v2"
    assert "latency batch8" in stdout and "accuracy onnxruntime" in stdout


def test_profile_agreement_without_labels(exported, digits, cli, tmp_path):
    """Unlabelled images and an FP16 reference: agreement is measured between two different files."""
    out, _ = exported
    code, _, err = cli("export", out / "model.onnx", "--fp16", "--out", tmp_path / "h")
    assert code == 0, err
    unlabelled = tmp_path / "imgs"
    unlabelled.mkdir()
    for p in sorted((digits[1] / "3").iterdir())[:12]:
        (unlabelled / p.name).write_bytes(p.read_bytes())
    code, _, err = cli("profile", out / "model.onnx", "--eval-data", unlabelled, "--reference",
                       tmp_path / "h" / "model_fp16.onnx", "--repeats", "5", "--out", tmp_path / "p")
    assert code == 0, err
    prof = json.loads((tmp_path / "p" / "report.json").read_text())
    assert "accuracy" not in prof
    ag = prof["agreement"]
    assert ag["n"] == 12 and ag["top1_agreement"] >= 100.0 * 11 / 12  # at most one of 12 images may flip
    # half precision moves the logits a little, never by much: compared with itself the difference would be 0
    assert 0 < ag["max_abs_diff"] < 0.1 and ag["mean_cosine"] == pytest.approx(1.0, abs=1e-4)


def test_torch_backend_profile(digits_model, digits, cli, tmp_path):
    code, _, err = cli("profile", "mobilenet_v2", "--backend", "torch", "--weights", digits_model[0],
                       "--eval-data", digits[1], "--max-images", "100", "--repeats", "5", "--threads", "2",
                       "--out", tmp_path / "t", *DIGITS_FLAGS)
    assert code == 0, err
    # strict JSON (no NaN, which jq and JavaScript refuse): a torch model has no file, so no size
    prof = json.loads((tmp_path / "t" / "report.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"report.json holds {c}"))
    assert prof["artifact"]["size_mb"] is None
    assert prof["backend"]["backend"] == "torch" and prof["accuracy"]["torch"]["n"] == 100
    assert prof["accuracy"]["torch"]["top1"] >= 90.0  # 100 images, 1 image = 1 point: 7 images under the model's 97
    assert prof["artifact"]["params"] == sum(p.numel() for p in digits_model[1].parameters())


def test_static_batch_refuses_larger_batch(digits_model, digits, cli, tmp_path):
    out = tmp_path / "static"
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--out", out, *DIGITS_FLAGS)
    assert code == 0, err
    code, _, err = cli("profile", out / "model.onnx", "--batch", "4", "--repeats", "3", "--out", tmp_path / "p")
    assert code == 2 and "--dynamic-batch" in err and not (tmp_path / "p").exists()
