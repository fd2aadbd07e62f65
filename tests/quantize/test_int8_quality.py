"""INT8 quality on a model trained in this session on real digits: TensorRT-form Q/DQ placement, the default
accuracy budget judged on held-out images, and the per-layer table that says which layer broke INT8.

The digits test split has 359 images: 1 image = 0.28 top-1 points; the held-out half (179) 1 image = 0.56.
"""

from __future__ import annotations

import json

import onnx
import pytest
from helpers import DIGITS_FLAGS, near_black_images

from edgekit.data.calibration import from_folder
from edgekit.quantize.config import QuantConfig
from edgekit.quantize.guard import quantize_with_guard
from edgekit.quantize.ort import preprocess_for_quantization


@pytest.fixture(scope="module")
def fp32(digits, digits_model, tmp_path_factory):
    """The trained digits MobileNetV2 (ReLU6 as Clip) exported to ONNX, with its 359 labelled test images."""
    from edgekit.api import ExportRequest
    from edgekit.data.images import load_array, scan
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model

    out = tmp_path_factory.mktemp("q") / "fp32"
    rep = export_model(ExportRequest("mobilenet_v2", out, weights=str(digits_model[0]),
                                     preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3)))
    from edgekit.models.preprocess import Preprocess

    pre = Preprocess.from_dict(rep["preprocess"])
    x, y = load_array(scan(digits[1], num_classes=10), pre)
    return out / "model.onnx", pre, x, y


def _top1(path, x, y) -> float:
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.measure.quality import run_batched

    with OnnxRuntimeRunner(path, threads=2) as r:
        return float((run_batched(r, x).argmax(1) == y).mean() * 100)


def _quantize(fp32, digits, tmp_path, target: str, reduce_range: bool | None = None):
    path, pre, _, _ = fp32
    cal = from_folder(digits[0], pre, 256, seed=0)
    out = tmp_path / f"{target}.onnx"
    quantize_with_guard(path, out, QuantConfig(target=target, reduce_range=reduce_range), cal,
                        tmp_path / f"{target}.json", target)
    return out


def test_tensorrt_qdq_sits_on_weighted_layer_inputs(fp32, digits, tmp_path):
    """No Q/DQ pair between a Conv and its Relu/Clip: TensorRT fuses the activation into the Conv."""
    m = onnx.load(str(_quantize(fp32, digits, tmp_path, "tensorrt")))
    producers = {o: n for n in m.graph.node for o in n.output}
    consumers: dict = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: i for i in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    clips = [n for n in m.graph.node if n.op_type in ("Clip", "Relu")]
    assert len(convs) == 52 and len(clips) == 35  # torchvision MobileNetV2: 52 convs, 35 ReLU6
    for clip in clips:  # each activation reads its Conv directly, in float, and nothing else reads that output
        assert producers[clip.input[0]].op_type == "Conv", clip.name
        assert [c.name for c in consumers[clip.input[0]]] == [clip.name], clip.name
    for conv in convs:
        data, weight = producers[conv.input[0]], producers[conv.input[1]]
        assert data.op_type == "DequantizeLinear" and weight.op_type == "DequantizeLinear", conv.name
        w, scale = inits[weight.input[0]], inits[weight.input[1]]
        assert w.data_type == onnx.TensorProto.INT8 and list(scale.dims) == [w.dims[0]]  # per-channel int8
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.data_type == onnx.TensorProto.INT8 and not onnx.numpy_helper.to_array(z).any()
                       for z in zps)  # symmetric signed activations, TensorRT's only INT8 form


def test_tensorrt_int8_within_a_point_of_cpu_int8(fp32, digits, tmp_path):
    """On the real ReLU6 model: the TensorRT-form graph (run by onnxruntime) keeps the CPU INT8's top-1 within
    1 point (3.6 of the 359 test images). The old placement (Q/DQ between Conv and Clip) lost 0.3 to 1.1 points
    against the CPU INT8 on digits models trained here, and 38 points of top-1 agreement with FP32 on
    EfficientNet-Lite0 (benchmarks/results/int8_placement.json); the structural test above pins the placement."""
    _, _, x, y = fp32
    cpu = _top1(_quantize(fp32, digits, tmp_path, "cpu"), x, y)
    trt = _top1(_quantize(fp32, digits, tmp_path, "tensorrt"), x, y)
    assert cpu >= _top1(fp32[0], x, y) - 1.5
    assert trt >= cpu - 1.0, (trt, cpu)


@pytest.fixture(scope="module")
def blank_calibration(tmp_path_factory):
    """Three near-black images: ranges far too narrow for real digits, so plain INT8 loses points."""
    blank = near_black_images(tmp_path_factory.mktemp("blank"))
    return blank


@pytest.mark.slow  # a whole CLI run or two; the default suite stays under 15 minutes
def test_default_budget_shrinks_the_drop(digits, digits_model, blank_calibration, cli, tmp_path):
    """Without --max-drop the guard holds 1 point on held-out images; `--max-drop off` shows the unguarded drop."""
    base = ["export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1], "--int8",
            "--calib-data", blank_calibration, *DIGITS_FLAGS]
    code, stdout, err = cli(*base, "--out", tmp_path / "off", "--max-drop", "off", "--calib-cache", tmp_path / "a.json")
    assert code == 0, err
    off = json.loads((tmp_path / "off" / "report.json").read_text())["int8"]
    assert off["within_budget"] is None and off["max_drop"] is None and off["guard_nodes"] == []
    assert off["budget"]["source"] == "off (--max-drop off)" and "no budget" in stdout and "budget 1" not in stdout
    code, stdout, err = cli(*base, "--out", tmp_path / "on", "--calib-cache", tmp_path / "b.json")
    assert code == 0, err
    on = json.loads((tmp_path / "on" / "report.json").read_text())["int8"]
    assert on["max_drop"] == 1.0 and on["budget"]["source"].startswith("default") and on["within_budget"] is True
    assert on["guard_nodes"] and "budget 1 met" in stdout
    # layers chosen on one half, the figure from the other: 180 + 179 of the 359 test images
    assert on["selection"]["images"] == 180 and on["held_out"]["images"] == 179
    assert on["drop"] == pytest.approx(on["held_out"]["drop"]) and on["drop"] <= 1.0
    # the default's held-out drop is at least 3 points (5 held-out images) smaller than the unguarded one
    assert off["drop"] >= on["drop"] + 3.0, (off["drop"], on["drop"])


def test_default_budget_is_not_claimed_on_too_few_images(fp32, cli, tmp_path):
    """7 built-in photos cannot resolve 1 point: no budget, said so, and never 'within budget'; the quality lines
    give counts, never a percentage or a drop, and say what would make INT8 judgeable."""
    code, stdout, err = cli("export", fp32[0], "--int8", "--out", tmp_path / "o", "--calib-cache", tmp_path / "c.json")
    assert code == 0, err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    q = rep["int8"]
    assert q["within_budget"] is None and q["max_drop"] is None
    assert q["budget"]["source"].startswith("default 1-point budget not applied: 3 held-out images cannot show a "
                                            "1-point drop (it takes 100); pass --eval-data")
    assert any(n.startswith("default 1-point budget not applied") for n in rep["notes"])
    md = (tmp_path / "o" / "report.md").read_text()
    quality = md.split("| int8 quality | ")[1].split(" |")[0]
    agreed = round(q["metric"] * 3 / 100)
    assert quality == f"{agreed} of 3 held-out images agree with FP32: too few to judge INT8; pass --eval-data"
    checked = md.split("| max \\|onnx - torch\\| | ")[1].split(" |")[0]
    assert checked.endswith("(7 of 7 images agree at top-1)") and "%" not in quality + checked


@pytest.mark.parametrize("value,message", [("-1", "a budget cannot be negative"),
                                           ("lots", "--max-drop lots: give top-1 points")])
def test_bad_max_drop(fp32, cli, tmp_path, value, message):
    code, _, err = cli("export", fp32[0], "--int8", "--max-drop", value, "--out", tmp_path / "o")
    assert code == 2 and message in err and not (tmp_path / "o").exists()


def test_layer_table_ranks_a_damaged_layer_first(fp32, digits, tmp_path):
    """Force one mid-network activation pair to a 40x coarser scale: the table must name its layer first."""
    from edgekit.quantize.explain import _downstream, layer_table

    path, _, x, _ = fp32
    # full-range weights on every CPU: 7-bit ones (chosen where there is no VNNI) add about 6 dB of noise to every
    # layer, which would narrow the margin this test holds the damaged layer to
    qpath = _quantize(fp32, digits, tmp_path, "cpu", reduce_range=False)
    pre = tmp_path / "pre.onnx"
    preprocess_for_quantization(path, pre)
    fmodel, qmodel = onnx.load(str(pre)), onnx.load(str(qpath))
    clean = layer_table(pre, qpath, x[:16])
    victim = [n for n in fmodel.graph.node if n.op_type == "Conv"][20]
    quantized = {n.input[0] for n in qmodel.graph.node if n.op_type == "QuantizeLinear"}
    tensor = _downstream(fmodel, victim.output[0], quantized)
    q = next(n for n in qmodel.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor)
    scale = next(i for i in qmodel.graph.initializer if i.name == q.input[1])
    scale.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(scale) * 40, scale.name))
    onnx.save(qmodel, str(tmp_path / "damaged.onnx"))
    table = layer_table(pre, tmp_path / "damaged.onnx", x[:16])
    assert clean[0]["node"] != victim.name  # not first by chance
    assert table[0]["node"] == victim.name, [r["node"] for r in table[:3]]
    row = table[0]
    second = max(r["sqnr_lost_db"] for r in table[1:] if r["sqnr_lost_db"] is not None)
    assert row["sqnr_lost_db"] > 5 + second, (row, second)  # over 3x the noise power any other layer adds
    assert len(table) == 53 and {r["op"] for r in table} == {"Conv", "Gemm"}  # 52 convs and the classifier


def test_export_reports_the_layer_table(fp32, digits, cli, tmp_path):
    code, stdout, err = cli("export", fp32[0], "--int8", "--calib-data", digits[0], "--calib-size", "128",
                            "--max-drop", "off", "--explain", "--out", tmp_path / "o", "--calib-cache",
                            tmp_path / "c.json")
    assert code == 0, err
    q = json.loads((tmp_path / "o" / "report.json").read_text())["int8"]
    assert len(q["layers"]) == 53 and all(r["output_sqnr_db"] is not None for r in q["layers"])
    lost = [r["sqnr_lost_db"] for r in q["layers"] if r["sqnr_lost_db"] is not None]
    assert lost == sorted(lost, reverse=True) and len(lost) == 53
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## INT8 layers, worst 10 of 53" in md and md.count(f"| {q['layers'][0]['node']} |") == 1
    assert "INT8 layers, worst 10 of 53" in stdout and q["layers"][0]["node"] in stdout
