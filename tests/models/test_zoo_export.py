"""Every zoo model exports (random weights) to a verified ONNX file whose MACs match torchvision's figure."""

from __future__ import annotations

import json

import pytest

from edgekit.models.registry import get_card, list_models

HEAVY = {"vgg16", "alexnet", "densenet121", "resnet50", "resnext50_32x4d", "googlenet", "resnet18",
         "efficientnet_b2", "efficientnet_b3"}


# The default run exports one model of each edge family (each family has its own exporter and MAC-count
# quirks) and one comparison model (the export-only branch); the other variants and the large comparison
# models (VGG16 alone is a 550 MB ONNX file) run under `pytest -m slow`, which .ci/run runs too.
DEFAULT = {"squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x0_5", "efficientnet_b0",
           "mnasnet1_0", "resnet18"}


@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in list_models()])
def test_export_and_profile_every_model(name, cli, tmp_path):
    out = tmp_path / name
    code, stdout, err = cli("export", name, "--weights", "random", "--out", out)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    ref = get_card(name).reference
    assert rep["verification"]["passed"] and rep["verification"]["top1_agreement"] == 100.0
    assert (out / "model.onnx").stat().st_size == rep["artifact"]["bytes"]
    # torchvision's "GFLOPS" are multiply-accumulates at the card's input size; ours are counted from the graph
    if ref["gmacs"] is not None:  # a package card (EfficientNet-Lite) has no published MAC count
        assert rep["artifact"]["macs"] / 1e9 == pytest.approx(ref["gmacs"], rel=0.02)
    assert rep["accuracy"] == {} and any("random weights" in n for n in rep["notes"])
    if name in HEAVY:
        return
    code, stdout, err = cli("profile", out / "model.onnx", "--repeats", "5", "--warmup", "1",
                            "--out", tmp_path / "p", "--threads", "1")
    assert code == 0, err
    prof = json.loads((tmp_path / "p" / "report.json").read_text())
    lat = prof["latency"]["batch1"]
    assert lat["n"] == 5 and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
    assert prof["artifact"]["sha256"] == rep["artifact"]["sha256"]
    assert f"{lat['median_ms']:.3f}" in stdout
