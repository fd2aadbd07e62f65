"""INT8 on a model trained in this session on real data: accuracy, Q/DQ structure, guard, cache, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from helpers import DIGITS_FLAGS, near_black_images, tiny_onnx_classifier
from PIL import Image

from edgekit.data.calibration import cache_key, from_folder
from edgekit.errors import EdgekitError
from edgekit.quantize.config import QuantConfig, extra_options, ort_arguments, saturates_u8s8
from edgekit.quantize.exclusions import excluded_nodes
from edgekit.quantize.guard import quantize_with_guard


def _ops(path):
    m = onnx.load(str(path))
    counts = {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return m, counts


@pytest.fixture(scope="module")
def int8_export(digits, digits_model, tmp_path_factory):
    """`edgekit export ... --int8` with real calibration images from the train split."""
    from edgekit.api import BackendOptions, ExportRequest, QuantizeOptions
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model

    tmp = tmp_path_factory.mktemp("int8")
    rep = export_model(ExportRequest(
        "mobilenet_v2", tmp / "out", weights=str(digits_model[0]), eval_data=str(digits[1]),
        preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3),
        quantize=QuantizeOptions("int8", calib_data=str(digits[0]), calib_size=256, seed=0,
                                 calib_cache=str(tmp / "cache.json")),
        backend=BackendOptions(threads=2)))
    return tmp / "out", rep


def test_int8_keeps_accuracy(int8_export):
    out, rep = int8_export
    q = rep["int8"]
    # the figure comes from the held-out half of the 359 test images (the guard chose on the other half)
    assert q["selection"]["images"] + q["held_out"]["images"] == 359 and q["baseline"] == q["held_out"]["baseline"]
    # 180 held-out images: 1 image = 0.56 points. The committed model measured a 0.00-point drop (2-core x86,
    # VNNI); onnxruntime's u8s8 kernels differ between CPUs (AVX2 vs VNNI), so the bound leaves 2 points
    # (4 images) of drop and 3% (11 of 359 images) of disagreement
    assert abs(q["accuracy_delta"]) <= 2.0 and q["metric"] >= q["baseline"] - 2.0
    assert q["agreement_with_fp32"]["top1_agreement"] >= 97.0
    assert q["calibration"]["size"] == 256 and q["calibration"]["kind"] == "images"
    assert q["size_ratio_to_fp32"] < 0.35  # int8 weights: about a quarter of the float file
    assert (out / "model_int8.onnx").stat().st_size == q["artifact"]["bytes"]
    lat = q["latency"]
    assert q["speedup_vs_fp32"] == pytest.approx(lat["fp32"]["median_ms"] / lat["int8"]["median_ms"])
    assert rep["precision"] == "int8"


def test_int8_graph_is_qdq_per_channel_u8(int8_export):
    out, rep = int8_export
    m, counts = _ops(out / "model_int8.onnx")
    assert counts["QuantizeLinear"] + counts["DequantizeLinear"] == rep["int8"]["qdq_nodes"]
    inits = {i.name: i for i in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    # every conv weight is int8 behind a per-channel DequantizeLinear (axis 0, one scale per output channel), but for
    # the few the accuracy guard kept float: on AVX2 without VNNI (u8s8 kernels that can saturate) it kept the first
    # conv float, on AVX-512 VNNI none; the report must name each float conv
    floats = set(rep["int8"]["float_nodes"])
    assert len(floats & {c.name for c in convs}) <= 3, floats
    producers = {o: n for n in m.graph.node for o in n.output}
    for conv in convs:
        if conv.name in floats:
            assert conv.input[1] in inits and inits[conv.input[1]].data_type == onnx.TensorProto.FLOAT
            continue
        dq = producers[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        w, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert w.data_type == onnx.TensorProto.INT8 and list(scale.dims) == [w.dims[0]]
    zero_points = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert zero_points and all(z.data_type == onnx.TensorProto.UINT8 for z in zero_points)  # CPU: u8 activations


def test_reduce_range_is_chosen_for_x86_cpus_without_vnni(monkeypatch):
    """Without VNNI (or AMX), x86 INT8 kernels add each pair of u8 x s8 products in a saturating int16, so the
    quantizer is told reduce_range there; Arm and VNNI machines keep full-range weights; TensorRT never reduces."""
    import platform

    from edgekit import cpuinfo

    assert saturates_u8s8("x86_64", {"avx2", "fma"}) and saturates_u8s8("AMD64", set())
    assert not saturates_u8s8("x86_64", {"avx2", "avx512_vnni"}) and not saturates_u8s8("x86_64", {"avx_vnni"})
    assert not saturates_u8s8("x86_64", {"amx_int8"}) and not saturates_u8s8("aarch64", {"asimddp"})
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpuinfo, "cpu_info", lambda: ("an AVX2 CPU", frozenset({"avx2", "fma"})))
    assert QuantConfig().reduce_range is True and QuantConfig(target="tensorrt").reduce_range is False
    assert QuantConfig(reduce_range=False).reduce_range is False  # --full-range: a VNNI target, built here
    monkeypatch.setattr(cpuinfo, "cpu_info", lambda: ("a VNNI CPU", frozenset({"avx2", "avx512_vnni"})))
    assert QuantConfig().reduce_range is False and QuantConfig(reduce_range=True).reduce_range is True
    assert ort_arguments(QuantConfig(reduce_range=True))["reduce_range"] is True
    assert ort_arguments(QuantConfig(reduce_range=False))["reduce_range"] is False
    with pytest.raises(EdgekitError, match="TensorRT takes full-range symmetric int8: drop --reduce-range"):
        QuantConfig(target="tensorrt", reduce_range=True)


@pytest.mark.parametrize("reduce_range,top", [(True, 64), (False, 127)])
def test_reduce_range_puts_the_weights_in_seven_bits(tmp_path, reduce_range, top):
    """The file holds what was asked: symmetric per-channel scales put each channel's largest weight at the top
    of the range, 64 in 7 bits (2 x 255 x 64 fits an int16), 127 in full range."""
    from onnx import numpy_helper

    tiny_onnx_classifier(tmp_path / "tiny.onnx")
    x = np.random.default_rng(1).standard_normal((16, 1, 3, 8, 8)).astype(np.float32)[:, 0]
    quantize_with_guard(tmp_path / "tiny.onnx", tmp_path / "q.onnx", QuantConfig(reduce_range=reduce_range), x,
                        tmp_path / "c.json", "k")
    m = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: i for i in m.graph.initializer}
    weights = [numpy_helper.to_array(inits[n.input[0]]) for n in m.graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in inits and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert len(weights) == 3  # conv, depthwise conv, Gemm
    assert all(int(np.abs(w.astype(np.int32)).max()) == top for w in weights)


@pytest.mark.parametrize("cfg,expected", [
    # cpu: Q/DQ on the 5 activations (input, conv1 out, dwconv out, pool out, flatten out; the logits stay
    # float), DQ on the 3 weights and the int32 bias; Relu folded away (asymmetric u8 activations)
    (QuantConfig(), None),
    (QuantConfig(exclude=("depthwise",)), "dwconv"),
    (QuantConfig(target="tensorrt"), "tensorrt"),
])
def test_exact_qdq_structure_of_a_tiny_model(tmp_path, cfg, expected):
    tiny_onnx_classifier(tmp_path / "tiny.onnx")
    x = np.random.default_rng(1).standard_normal((16, 1, 3, 8, 8)).astype(np.float32)[:, 0]
    res = quantize_with_guard(tmp_path / "tiny.onnx", tmp_path / "q.onnx", cfg, x, tmp_path / "c.json", "k")
    m, counts = _ops(tmp_path / "q.onnx")
    quantized_weights = {n.input[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
    if expected is None:
        assert res.float_nodes == []
        assert counts["QuantizeLinear"] == 5 and counts["DequantizeLinear"] == 5 + 3 + 1
        assert "Relu" not in counts and m.graph.node[-1].op_type == "Gemm"
        assert {"w1_quantized", "dw_quantized", "fc_quantized"} <= quantized_weights
    elif expected == "dwconv":
        assert res.float_nodes == ["dwconv"]
        assert "dw_quantized" not in quantized_weights and "w1_quantized" in quantized_weights
        # the activations around it keep their Q/DQ (their other neighbours are int8); its weight does not
        assert counts["QuantizeLinear"] == 5 and counts["DequantizeLinear"] == 5 + 2 + 1
    else:
        # TensorRT: Q/DQ only on the inputs of weighted layers (input, relu out, flatten out), none on their
        # outputs; activations symmetric int8 (zero point 0); 3 weights behind DQ, and the bias left float (TensorRT
        # refuses an int32 DequantizeLinear: onnx_rules.py)
        assert res.float_nodes == ["relu", "gap", "flat"]
        assert counts["QuantizeLinear"] == 3 and counts["DequantizeLinear"] == 6 and counts["Relu"] == 1
        inits = {i.name: i for i in m.graph.initializer}
        zps = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
        assert zps and all(z.data_type == onnx.TensorProto.INT8 for z in zps)
        assert all(not onnx.numpy_helper.to_array(z).any() for z in zps)


def test_guard_keeps_sensitive_layers_float(digits, digits_model, cli, tmp_path):
    """Calibrated on three near-black images, plain INT8 loses many points; the guard wins them back.

    359 images: 1 image = 0.28 points. Measured on the committed model: 14.2 points lost unguarded (51
    images), 0.56 (2 images) with one layer back in float; the asserts leave several images either side."""
    blank = near_black_images(tmp_path / "blank")
    out = tmp_path / "o"
    code, stdout, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                            "--out", out, "--int8", "--calib-data", blank, "--max-drop", "2",
                            "--calib-cache", tmp_path / "c.json", *DIGITS_FLAGS)
    assert code == 0, err
    q = json.loads((out / "report.json").read_text())["int8"]
    assert q["steps"][0]["drop"] >= 6.0 and q["steps"][0]["float_nodes"] == []  # 3x the budget, 21+ images
    assert q["within_budget"] and q["drop"] <= 2.0 and q["guard_nodes"]
    assert q["float_nodes"] == q["steps"][-1]["float_nodes"] and q["sensitivity_top"]
    assert "kept in float" in stdout and "few" in err  # the warning about 3 calibration images


def test_guard_over_budget_exits_1_and_keeps_best_aside(digits, digits_model, cli, tmp_path):
    blank = tmp_path / "blank"
    blank.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(blank / "b.png")
    out = tmp_path / "o"
    # ranges from one black image, and the guard may put no layer back in float: the budget cannot be met.
    # 359 images: 1 image = 0.28 points; measured 14.5 points lost (52 images), asserted over 6 (21 images).
    # (With one float layer allowed the drop measured 0.84, 3 images: too close to any budget to test on.)
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                       "--out", out, "--int8", "--calib-data", blank, "--max-drop", "0.1", "--max-float-layers", "0",
                       "--calib-cache", tmp_path / "c.json", *DIGITS_FLAGS)
    rep = json.loads((out / "report.json").read_text())
    q = rep["int8"]
    assert not q["within_budget"] and q["drop"] >= 6.0
    assert code == 1 and "exceeds --max-drop 0.1" in err and len(q["steps"]) == 1
    assert q["file"] == "model_int8_over_budget.onnx" and (out / q["file"]).exists()
    assert not (out / "model_int8.onnx").exists()
    assert q["selection"]["drop"] == min(s["drop"] for s in q["steps"]) > 0 and q["float_nodes"] == []
    # the Python API keeps the budget as the command does: the same request raises the same error, with the
    # report, after writing the same files
    from edgekit.api import ExportRequest, GraphOptions, PreprocessOverrides, QuantizeOptions, export_model
    from edgekit.errors import BudgetExceededError

    request = ExportRequest("mobilenet_v2", out=tmp_path / "api", weights=str(digits_model[0]),
                            eval_data=str(digits[1]), preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3,
                                                                                     (0.5,) * 3),
                            quantize=QuantizeOptions(precision="int8", calib_data=str(blank), max_drop=0.1,
                                                     max_float_layers=0, calib_cache=str(tmp_path / "c.json")),
                            export=GraphOptions())
    with pytest.raises(BudgetExceededError) as raised:
        export_model(request)
    said = next(ln for ln in err.splitlines() if ln.startswith("error: ")).removeprefix("error: ")
    assert str(raised.value) == said.replace(str(out), str(tmp_path / "api"))
    assert raised.value.exit_code == code == 1 and raised.value.report["int8"]["drop"] == q["drop"]
    assert (tmp_path / "api" / "model_int8_over_budget.onnx").exists()


def test_cache_reuse_is_byte_identical_and_keyed(int8_export, digits, digits_pre, tmp_path):
    out, rep = int8_export
    cfg = QuantConfig()
    cal = from_folder(digits[0], digits_pre, 64, seed=0)
    key = cache_key("m", digits_pre, cfg.method_fields(), cal)
    first = quantize_with_guard(out / "model.onnx", tmp_path / "a.onnx", cfg, cal, tmp_path / "c.json", key)
    second = quantize_with_guard(out / "model.onnx", tmp_path / "b.onnx", cfg, cal, tmp_path / "c.json", key)
    assert not first.cache["hit"] and second.cache["hit"]
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    other_images = from_folder(digits[0], digits_pre, 64, seed=1)
    assert cache_key("m", digits_pre, cfg.method_fields(), other_images) != key
    assert cache_key("m", digits_pre, QuantConfig(method="entropy").method_fields(), cal) != key
    assert cache_key("m", digits_pre, QuantConfig(method="percentile", percentile=99.9).method_fields(), cal) != \
        cache_key("m", digits_pre, QuantConfig(method="percentile").method_fields(), cal)
    # a corrupt cache is ignored (with a warning) and rebuilt, never trusted
    (tmp_path / "c.json").write_text("{not json")
    third = quantize_with_guard(out / "model.onnx", tmp_path / "c.onnx", cfg, cal, tmp_path / "c.json", key)
    assert not third.cache["hit"] and json.loads((tmp_path / "c.json").read_text())["key"] == key
    assert (tmp_path / "c.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes()


@pytest.mark.slow  # a whole CLI run or two; the default suite stays under 15 minutes
def test_second_cli_run_reuses_cache(digits, digits_model, cli, tmp_path):
    args = ["export", "mobilenet_v2", "--weights", digits_model[0], "--int8", "--calib-data", digits[0],
            "--calib-size", "100", "--calib-cache", tmp_path / "c.json", *DIGITS_FLAGS]
    code, _, err = cli(*args, "--out", tmp_path / "a")
    assert code == 0, err
    assert json.loads((tmp_path / "a" / "report.json").read_text())["int8"]["cache"]["hit"] is False
    code, _, err = cli(*args, "--out", tmp_path / "b")
    assert code == 0, err
    cache = json.loads((tmp_path / "b" / "report.json").read_text())["int8"]["cache"]
    assert cache["hit"] is True and cache["file"] == str(tmp_path / "c.json")  # the second run read the ranges
    assert (tmp_path / "a" / "model_int8.onnx").read_bytes() == (tmp_path / "b" / "model_int8.onnx").read_bytes()
    code, _, _ = cli(*args[:-len(DIGITS_FLAGS)], "--calib-method", "entropy", *DIGITS_FLAGS, "--out", tmp_path / "c")
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    assert code == 0 and rep["int8"]["cache"]["hit"] is False


def test_npy_calibration_and_fp16(int8_export, digits, digits_pre, cli, tmp_path):
    from edgekit.data.images import load_array, scan

    x, _ = load_array(scan(digits[0], labels=False).subset(range(120)), digits_pre)
    np.save(tmp_path / "calib.npy", x)
    src = int8_export[0] / "model.onnx"
    code, _, err = cli("export", src, "--int8", "--calib-data", tmp_path / "calib.npy", "--out", tmp_path / "q",
                       "--calib-cache", tmp_path / "c.json")
    assert code == 0, err
    q = json.loads((tmp_path / "q" / "report.json").read_text())["int8"]
    assert q["calibration"]["kind"] == "tensors" and q["calibration"]["size"] == 120
    np.save(tmp_path / "bad.npy", x[:, :, :16, :16])
    code, _, err = cli("export", src, "--int8", "--calib-data", tmp_path / "bad.npy", "--out", tmp_path / "b")
    assert code == 2 and "the model needs (N, 3, 32, 32)" in err

    code, _, err = cli("export", src, "--fp16", "--out", tmp_path / "h")
    assert code == 0, err
    h = json.loads((tmp_path / "h" / "report.json").read_text())["fp16"]
    m = onnx.load(str(tmp_path / "h" / "model_fp16.onnx"))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O kept
    conv_w = {n.input[1] for n in m.graph.node if n.op_type == "Conv"}
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer if i.name in conv_w)
    ag = h["agreement_with_fp32"]  # on the built-in photos (no --eval-data): one near-tie may flip, no more
    assert ag["top1_agreement"] >= 100.0 * (ag["n"] - 1) / ag["n"] and ag["mean_cosine"] > 0.999
    assert 0.45 < h["size_ratio_to_fp32"] < 0.55


def test_bad_input(int8_export, digits, cli, tmp_path):
    src = int8_export[0] / "model.onnx"
    code, _, err = cli("export", src, "--int8", "--fp16", "--out", tmp_path / "o")
    assert code == 2 and "--int8 and --fp16 together" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("export", src, "--int8", "--calib-data", tmp_path / "empty", "--out", tmp_path / "o")
    assert code == 2 and "holds no images" in err and not (tmp_path / "o").exists()
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("no")
    code, _, err = cli("export", src, "--int8", "--calib-data", tmp_path / "txt", "--out", tmp_path / "o")
    assert code == 2 and "holds no images" in err
    code, _, err = cli("export", src, "--int8", "--calib-method", "kl", "--out", tmp_path / "o")
    assert code == 2 and "unknown calibration method 'kl'" in err
    code, _, err = cli("export", src, "--int8", "--exclude-ops", "attention", "--calib-data", digits[1],
                       "--out", tmp_path / "o")
    assert code == 2 and "--exclude-ops attention" in err
    code, _, err = cli("export", src, "--max-drop", "1", "--out", tmp_path / "o")
    assert code == 2 and "add --int8" in err
    with pytest.raises(EdgekitError, match="unknown quantizer option 'Optimize'"):
        extra_options(QuantConfig(extra=(("Optimize", True),)))
    with pytest.raises(EdgekitError, match="needs a float"):
        extra_options(QuantConfig(extra=(("CalibPercentile", "high"),)))


def test_exclusion_patterns_on_real_graphs(tmp_path):
    """SE blocks, hard-swish and depthwise convs are found in MobileNetV3's exported graph."""
    from edgekit.api import ExportRequest
    from edgekit.pipeline.export import export_model

    export_model(ExportRequest("mobilenet_v3_small", tmp_path / "m", weights="random"))
    m = onnx.load(str(tmp_path / "m" / "model.onnx"))
    by_name = {n.name: n for n in m.graph.node}
    dw = excluded_nodes(m, QuantConfig(exclude=("depthwise",)))
    se = excluded_nodes(m, QuantConfig(exclude=("se",)))
    hs = excluded_nodes(m, QuantConfig(exclude=("hardswish",)))
    assert len(dw) == 11 and all(by_name[n].op_type == "Conv" for n in dw)  # one depthwise conv per block
    se_ops = [by_name[n].op_type for n in se]
    assert {"Conv", "Relu", "HardSigmoid", "Mul"} <= set(se_ops)
    pools = [op for op in se_ops if op in ("GlobalAveragePool", "ReduceMean")]
    assert len(pools) == 9 and se_ops.count("Conv") == 18  # the 9 SE blocks (2 convs each), not the head
    assert hs and {by_name[n].op_type for n in hs} <= {"HardSwish", "HardSigmoid", "Mul"}
