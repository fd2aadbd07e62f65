"""Images read a batch at a time: the same floats and figures as one array of every image, in memory that does not
grow with the folder, decoded in worker processes, and a uint8 copy in memory or on disk for sets read again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.data.images import load_array, scan
from edgekit.data.stream import ImageStream
from edgekit.errors import EdgekitError
from edgekit.models.preprocess import Preprocess

REPO = Path(__file__).resolve().parents[2]


def test_every_way_of_reading_gives_the_floats_of_one_array(digits, digits_pre, monkeypatch):
    """A fresh decode in this process, decoding workers, the uint8 copy in memory and on disk, and half-subsets
    of each: bit for bit the array of every image that edgekit held before streaming (``load_array``), in the same
    memory layout (channels last, as torchvision leaves an image): a torch model then runs the same kernels on
    them (on channels-first copies of the same values, fine-tuning's weights came out different)."""
    images = scan(digits[1], num_classes=10)
    want_x, want_y = load_array(images, digits_pre)
    stream = ImageStream(images, digits_pre)
    monkeypatch.setenv("EDGEKIT_WORKERS", "0")
    x, y = stream.array()
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert x.strides == want_x.strides == (3 * 32 * 32 * 4, 4, 32 * 3 * 4, 3 * 4)
    monkeypatch.setenv("EDGEKIT_WORKERS", "2")
    np.testing.assert_array_equal(stream.array()[0], want_x)
    in_ram = stream.cache()
    assert in_ram.describe_cache()["where"] == "memory"
    monkeypatch.setenv("EDGEKIT_CACHE_RAM_MB", "0")
    with stream.cache() as on_disk:
        folder = Path(on_disk.describe_cache()["where"])
        assert folder.is_dir() and on_disk.describe_cache()["bytes"] == len(images) * 3 * 32 * 32
        for s in (in_ram, on_disk):
            np.testing.assert_array_equal(s.array()[0], want_x)
            assert s.array()[0].strides == want_x.strides
            odd = s.subset(range(1, len(images), 2))
            np.testing.assert_array_equal(odd.array()[0], want_x[1::2])
            np.testing.assert_array_equal(odd.labels, want_y[1::2])
            np.testing.assert_array_equal(odd.subset([3, 0]).head(2), want_x[1::2][[3, 0]])
    assert not folder.exists()  # closing the stream removes its copy on disk


def test_a_bad_image_read_by_a_worker_is_one_line_naming_it(tmp_path, monkeypatch):
    from PIL import Image

    for i in range(70):
        Image.new("RGB", (12, 12), (i, 0, 0)).save(tmp_path / f"{i:03d}.png")
    (tmp_path / "050.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    monkeypatch.setenv("EDGEKIT_WORKERS", "2")
    with pytest.raises(EdgekitError) as err:
        ImageStream(scan(tmp_path), Preprocess(8, 8)).array()
    assert str(err.value).startswith(f"{tmp_path / '050.png'} is not a readable image")
    assert len(str(err.value).splitlines()) == 1 and "Traceback" not in str(err.value)


def test_streamed_and_array_paths_give_the_same_accuracy_and_int8_bytes(digits, digits_model, digits_pre, tmp_path,
                                                                        monkeypatch):
    """On the committed digits model: accuracy from streamed batches (its uint8 copy on disk, read by workers)
    equals accuracy from one array, and INT8 calibrated from a streamed folder is the same file, byte for byte, as
    INT8 calibrated from the array of those images."""
    import hashlib

    import torch

    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.data.calibration import from_folder
    from edgekit.graph.export import onnx_from_torch
    from edgekit.measure.quality import outcomes, run_batched
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard
    from edgekit.stats import accuracy

    fp32 = tmp_path / "m.onnx"
    with torch.no_grad():
        onnx_from_torch(digits_model[1], [1, 3, 32, 32], fp32)
    images = scan(digits[1], num_classes=10)
    x, y = load_array(images, digits_pre)
    with OnnxRuntimeRunner(fp32) as r:
        want = accuracy(run_batched(r, x), y)
        monkeypatch.setenv("EDGEKIT_CACHE_RAM_MB", "0")
        monkeypatch.setenv("EDGEKIT_WORKERS", "2")
        with ImageStream(images, digits_pre).cache() as stream:
            got = outcomes([r], stream)[0].accuracy()
    assert got == want and want["top1"] > 95.0
    cal = from_folder(digits[0], digits_pre, 64, seed=0)
    assert cal.samples.describe_cache()["where"] != "memory"  # the disk copy, read back a batch at a time
    cfg = QuantConfig(target="cpu")
    quantize_with_guard(fp32, tmp_path / "streamed.onnx", cfg, cal, tmp_path / "c1.json", "k")
    quantize_with_guard(fp32, tmp_path / "array.onnx", cfg, cal.x, tmp_path / "c2.json", "k")
    digest = [hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("streamed.onnx", "array.onnx")]
    assert digest[0] == digest[1]


def _tiny_224_onnx(path: Path) -> None:
    """A 10-class convolution over 224x224 inputs: cheap to run, so a profile's memory is the images'."""
    import torch

    from edgekit.graph.export import onnx_from_torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    with torch.no_grad():
        onnx_from_torch(model, [1, 3, 224, 224], path)


def _peak_rss_mb(args: list, cwd: Path) -> float:
    """The peak resident memory of ``args`` run as its own process (getrusage of the waited-for child)."""
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", wrapper, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip().splitlines()[-1]) / 1024


# 900 more 224x224 images held as float32 (edgekit before streaming) add 542 MB; a streamed run's peak moves with
# the allocator by up to ~100 MB here (peaks of 875-977 MB over repeated runs of 60-3000 images)
MEMORY_MARGIN_MB = 150


def test_profile_memory_does_not_grow_with_the_image_count(digits, tmp_path):
    """`edgekit profile --eval-data` on 100 and on 1000 images (links to the digits, read at 224x224): the peak
    resident memory of the whole command stays within MEMORY_MARGIN_MB, where holding every image as one float32
    array (what edgekit did before streaming) grows by 542 MB."""
    model = tmp_path / "tiny.onnx"
    _tiny_224_onnx(model)
    by_class = [sorted((Path(digits[1]) / str(c)).glob("*.png")) for c in range(10)]
    files = [f for group in zip(*by_class) for f in group]  # every class in turn
    peaks = {}
    for n in (100, 1000):
        folder = tmp_path / f"eval{n}"
        for i in range(n):
            src = files[i % len(files)]
            (folder / src.parent.name).mkdir(parents=True, exist_ok=True)
            (folder / src.parent.name / f"{i:04d}.png").symlink_to(src)
        peaks[n] = _peak_rss_mb([sys.executable, "-m", "edgekit", "profile", model, "--eval-data", folder,
                                 "--repeats", "5", "--warmup", "1", "--threads", "1", "--out", tmp_path / f"p{n}"],
                                tmp_path)
    print(f"peak resident memory: {peaks[100]:.0f} MB on 100 images, {peaks[1000]:.0f} MB on 1000")
    assert peaks[1000] - peaks[100] <= MEMORY_MARGIN_MB, peaks
