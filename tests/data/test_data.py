"""Image folders: labels from folder names, odd image modes, and the errors a newcomer meets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.data.images import load_array, scan
from edgekit.errors import EdgekitError
from edgekit.models.preprocess import Preprocess


def _img(path, mode="RGB", size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    color = {"RGB": (200, 10, 10), "L": 128, "CMYK": (0, 200, 200, 0), "RGBA": (10, 200, 10, 128),
             "P": 3}[mode]
    img = Image.new(mode, size, color)
    img.save(path, format="TIFF" if mode == "CMYK" else ("PNG" if path.suffix == ".png" else "JPEG"))


def test_wnid_folders_map_to_imagenet_indices(tmp_path):
    # a subset of classes: the indices must still be ImageNet's, not the folders' positions
    _img(tmp_path / "n02123045" / "a.jpg")  # tabby, 281
    _img(tmp_path / "n01440764" / "b.jpg")  # tench, 0
    s = scan(tmp_path, num_classes=1000)
    assert s.label_source == "wnid" and dict(zip([p.parent.name for p in s.paths], s.labels)) == {
        "n01440764": 0, "n02123045": 281}
    with pytest.raises(EdgekitError, match="ImageNet wnids but the model has 10 classes"):
        scan(tmp_path, num_classes=10)


def test_class_name_and_sorted_folders(tmp_path):
    for c in ("dog", "cat"):
        _img(tmp_path / c / "x.jpg")
    s = scan(tmp_path, categories=["plane", "dog", "cat"], num_classes=3)
    assert s.label_source == "class-name" and s.labels == [2, 1]  # cat, dog in sorted folder order
    s = scan(tmp_path, num_classes=2)
    assert s.label_source == "sorted-folders" and s.labels == [0, 1]
    with pytest.raises(EdgekitError, match="2 class folders but the model has 5 classes"):
        scan(tmp_path, num_classes=5)


def test_modes_are_converted_and_counted(tmp_path):
    _img(tmp_path / "g.png", "L")
    _img(tmp_path / "c.tif", "CMYK")
    _img(tmp_path / "a.png", "RGBA")
    _img(tmp_path / "p.png", "P")
    _img(tmp_path / "r.jpg")
    (tmp_path / "notes.txt").write_text("hi")
    s = scan(tmp_path)
    x, y = load_array(s, Preprocess(16, 16))
    assert x.shape == (5, 3, 16, 16) and x.dtype == np.float32 and y is None
    assert dict(s.converted) == {"L": 1, "CMYK": 1, "RGBA": 1, "P": 1}
    assert [p.name for p in s.skipped] == ["notes.txt"]


def test_errors(tmp_path):
    with pytest.raises(EdgekitError, match="does not exist"):
        scan(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekitError, match="holds no images"):
        scan(tmp_path / "empty")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(EdgekitError, match="holds no images"):
        scan(tmp_path / "txt")
    (tmp_path / "bad").mkdir()
    _img(tmp_path / "bad" / "ok.jpg")
    (tmp_path / "bad" / "fake.jpg").write_text("this is not a jpeg")
    with pytest.raises(EdgekitError, match=r"fake.jpg is not a readable image.*remove it"):
        load_array(scan(tmp_path / "bad"), Preprocess(16, 16))
    (tmp_path / "cls" / "a").mkdir(parents=True)
    with pytest.raises(EdgekitError, match="class folders but no images"):
        scan(tmp_path / "cls")


def test_preprocess_validation():
    with pytest.raises(ValueError, match="interpolation"):
        Preprocess(interpolation="lanczos")
    with pytest.raises(ValueError, match="crop_size <= resize_size"):
        Preprocess(224, 200)
