"""Calibration sources: a folder, an array, a user's own reader (only ``get_next()``) or iterable all calibrate
the same ranges from the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import tiny_onnx_classifier
from PIL import Image

from edgekit.data import calibration
from edgekit.errors import EdgekitError
from edgekit.models.preprocess import Preprocess
from edgekit.quantize.config import QuantConfig
from edgekit.quantize.guard import quantize_with_guard

PRE = Preprocess(crop_size=8, resize_size=8)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(3)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB").save(d / f"{i:02d}.png")
    tiny_onnx_classifier(tmp_path / "tiny.onnx")
    return d


class MyReader:
    """What a user writes: their own loading and preprocessing, and nothing but ``get_next()``."""

    def __init__(self, folder, input_name="input"):
        self.paths = iter(sorted(folder.glob("*.png")))
        self.input_name = input_name

    def get_next(self):
        p = next(self.paths, None)
        if p is None:
            return None
        return {self.input_name: PRE(Image.open(p).convert("RGB"))[None]}


def _calibrate(tmp_path, source, tag: str):
    out = tmp_path / f"{tag}.onnx"
    res = quantize_with_guard(tmp_path / "tiny.onnx", out, QuantConfig(), source, tmp_path / f"{tag}.json", tag)
    assert not res.cache["hit"]
    return json.loads((tmp_path / f"{tag}.json").read_text())["ranges"], out.read_bytes()


def test_user_reader_calibrates_like_the_folder(folder, tmp_path):
    cal = calibration.from_folder(folder, PRE, size=12)
    ranges_folder, bytes_folder = _calibrate(tmp_path, cal, "folder")
    ranges_reader, bytes_reader = _calibrate(tmp_path, MyReader(folder), "reader")
    assert ranges_reader == ranges_folder and bytes_reader == bytes_folder
    # an iterable of batches (a generator; the tiny model takes batches of one) and a bare array fit too
    gen = (cal.x[i:i + 1] for i in range(len(cal.x)))
    assert _calibrate(tmp_path, calibration.from_iterable(gen), "iterable")[0] == ranges_folder
    assert _calibrate(tmp_path, cal.x, "array")[0] == ranges_folder


def test_reader_materializes_once_for_the_pipelines(folder):
    cal = calibration.from_reader(MyReader(folder), size=10)
    want = calibration.from_folder(folder, PRE, size=12).x[:10]
    np.testing.assert_array_equal(cal.x, want)
    assert cal.kind == "reader" and cal.describe()["size"] == 10 and cal.fingerprint
    assert calibration.from_reader(MyReader(folder), size=10).fingerprint == cal.fingerprint
    with pytest.raises(EdgekitError, match="gave no samples"):
        calibration.from_reader(calibration.from_iterable([]))
    with pytest.raises(EdgekitError, match="not a calibration source"):
        calibration.reader_for(42, "input")


def test_pipeline_calibration_options_take_a_reader(folder):
    from types import SimpleNamespace

    from edgekit.pipeline.calib import CalibOptions, calibration_set

    notes: list[str] = []
    cal = calibration_set(SimpleNamespace(preprocess=PRE, input_shape=[1, 3, 8, 8]),
                           CalibOptions(MyReader(folder), size=5), notes)
    assert cal.kind == "reader" and len(cal.x) == 5 and any("few" in n for n in notes)
    with pytest.raises(EdgekitError, match=r"shape \[3, 8, 8\]; the model needs \[3, 16, 16\]"):
        calibration_set(SimpleNamespace(preprocess=PRE, input_shape=[1, 3, 16, 16]), CalibOptions(MyReader(folder)),
                         [])
