"""The two checks that stand between a user and a silently wrong file: the FP32 export's verification
against its torch source, and the FP16 graph's drift check. Each is fed a perturbed weight and must refuse."""

from __future__ import annotations

import json

import onnx
from helpers import DIGITS_FLAGS
from onnx import numpy_helper


def _classifier_bias(model: onnx.ModelProto):
    """The initializer holding the last Gemm's bias (the 10 class offsets)."""
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    return next(i for i in model.graph.initializer if i.name == gemm.input[2])


def test_export_verification_refuses_a_perturbed_weight(digits, digits_model, cli, tmp_path, monkeypatch):
    """One class's bias moved by 1.0 in the ONNX graph only: every logit of that class is 1.0 off the torch
    model, far over atol 1e-4 + rtol 1e-3 x max|logit| (about 0.02 here)."""
    import edgekit.pipeline.export

    real = edgekit.pipeline.export.simplify

    def perturbed(raw):
        slim = real(raw)
        bias = _classifier_bias(slim)
        b = numpy_helper.to_array(bias).copy()
        b[0] += 1.0
        bias.CopyFrom(numpy_helper.from_array(b, bias.name))
        return slim

    monkeypatch.setattr(edgekit.pipeline.export, "simplify", perturbed)
    out = tmp_path / "o"
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                       "--max-images", "64", "--out", out, *DIGITS_FLAGS)
    assert code == 1, err  # README: exit 1 for a failed verification (2 is for bad input)
    assert "model.onnx disagrees with its source: max |diff| 1 > 0.0001 + 0.001 x" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_fp16_drift_check_refuses_a_perturbed_weight(digits, digits_model, cli, tmp_path, monkeypatch):
    """The FP16 file's classifier weights negated: its logits point the other way (cosine near -1)."""
    import edgekit.quantize.fp16

    real = edgekit.quantize.fp16.fp16_from_onnx

    def perturbed(src, dst, *a, **k):
        real(src, dst, *a, **k)
        m = onnx.load(str(dst))
        gemm = [n for n in m.graph.node if n.op_type == "Gemm"][-1]
        w = next(i for i in m.graph.initializer if i.name == gemm.input[1])
        w.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(w), w.name))
        onnx.save(m, str(dst))

    monkeypatch.setattr(edgekit.quantize.fp16, "fp16_from_onnx", perturbed)
    out = tmp_path / "o"
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                       "--max-images", "64", "--fp16", "--out", out, *DIGITS_FLAGS)
    assert code == 1, err
    assert "the FP16 graph drifts from FP32 (mean cosine -" in err and "< 0.999)" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []

    monkeypatch.setattr(edgekit.quantize.fp16, "fp16_from_onnx", real)  # the same export, unperturbed, passes
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                       "--max-images", "64", "--fp16", "--out", out, *DIGITS_FLAGS)
    assert code == 0, err
    fp16 = json.loads((out / "report.json").read_text())["fp16"]["agreement_with_fp32"]
    assert fp16["mean_cosine"] > 0.999 and fp16["n"] == 64


def test_fp16_overflow_to_inf_is_refused(digits, digits_model, cli, tmp_path, monkeypatch):
    """FP16 weights that overflow (|w| x 1e6 is past half's 65504) give inf logits and a NaN cosine: a NaN must
    fail the drift check, not slip through a `cosine < 0.999` comparison."""
    import numpy as np

    import edgekit.quantize.fp16

    real = edgekit.quantize.fp16.fp16_from_onnx

    def overflowing(src, dst, *a, **k):
        real(src, dst, *a, **k)
        m = onnx.load(str(dst))
        gemm = [n for n in m.graph.node if n.op_type == "Gemm"][-1]
        w = next(i for i in m.graph.initializer if i.name == gemm.input[1])
        with np.errstate(over="ignore"):
            big = (numpy_helper.to_array(w).astype(np.float32) * 1e6).astype(np.float16)
        w.CopyFrom(numpy_helper.from_array(big, w.name))
        onnx.save(m, str(dst))

    monkeypatch.setattr(edgekit.quantize.fp16, "fp16_from_onnx", overflowing)
    out = tmp_path / "o"
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                       "--max-images", "16", "--fp16", "--out", out, *DIGITS_FLAGS)
    assert code == 1, err
    assert "the FP16 graph drifts from FP32 (mean cosine nan" in err, err
    assert not out.exists()
