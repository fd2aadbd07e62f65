"""Every format converted from one small net by its own converter, run by its own runtime and compared with torch
(Core ML: written, then read back by coremltools' spec reader only: it predicts on macOS/iOS alone). A format whose
extra is absent is skipped with the extra's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit._optional import available
from edgekit.backends import registry as backends
from edgekit.backends.base import RunnerRequest
from edgekit.formats import registry as formats

SHAPE = (1, 3, 32, 32)


def need(name: str) -> None:
    spec = formats.get(name)
    missing = [m for m in spec.requires if not available(m)]
    if missing:
        pytest.skip(f"{name}: {', '.join(missing)} not installed (edgekit's [{spec.extra}] extra)")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A small CNN with batch norm, a depthwise conv and a residual add (what the zoo's nets are made of), its ONNX
    file, and real-valued test inputs; the reference is torch's own output."""
    import torch
    from torch import nn

    from edgekit.graph.export import onnx_from_torch

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.ReLU6())
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            y = self.stem(x)
            y = y + self.dw(y)
            return self.head(y.mean((2, 3)))

    torch.manual_seed(0)
    model = Net().eval()
    with torch.no_grad():
        for bn in (model.stem[1], model.dw[1]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    d = tmp_path_factory.mktemp("net")
    onnx_from_torch(model, SHAPE, d / "model.onnx")
    x = np.random.default_rng(0).standard_normal((6, *SHAPE[1:])).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return model, d, x, ref


@pytest.mark.parametrize("name", [n for n in formats.names() if formats.get(n).backend])
def test_each_runnable_format_agrees_with_torch(name, net):
    need(name)
    model, d, x, ref = net
    path = d / formats.file_name(name, "fp32")
    facts = formats.convert(name, formats.ConvertSource(model, d / "model.onnx", SHAPE), path)
    weights = path.with_suffix(".bin") if name == "ncnn" else path  # ncnn: the graph in .param, weights in .bin
    assert weights.stat().st_size >= 4 * 778 and facts["converter"]  # 778 FP32 weights once batch norm is folded
    with backends.open_runner(formats.get(name).backend, RunnerRequest(path, threads=1)) as r:
        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
    worst = float(np.abs(got - ref).max())
    # measured 1e-6 to 4e-6 on this net; the export's own bound is 1e-4 + 1e-3 * max|ref|
    assert worst <= 1e-4 + 1e-3 * float(np.abs(ref).max()), f"{name}: max |diff| {worst:.3g}"
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_coreml_is_written_and_read_back_not_run(net, tmp_path, monkeypatch):
    need("coreml")
    import tempfile

    from edgekit.formats.coreml import read_spec

    model, d, _, _ = net
    path = d / "model.mlpackage"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where coremltools puts its working package
    formats.convert("coreml", formats.ConvertSource(model, None, SHAPE, {"labels": list("abcdefghij")}), path)
    assert list(tmp_path.iterdir()) == []  # not left in the system temp folder until the interpreter exits
    spec = read_spec(path)
    assert spec["ml_program"] and spec["inputs"] == [{"name": "input", "shape": list(SHAPE)}]
    assert spec["outputs"] == ["logits"] and spec["metadata"]["labels"] == '["a", "b", "c", "d", "e", "f", "g", "h", ' \
        '"i", "j"]'
    assert formats.get("coreml").backend is None and "macOS/iOS" in formats.get("coreml").not_run_reason


def test_ncnn_reads_a_non_contiguous_batch(net):
    """Evaluation arrays are slices of larger ones; ncnn.Mat borrows its buffer, so the runner must keep the
    contiguous copy alive (a temporary gave max |diff| 4 on the digits model)."""
    need("ncnn")
    model, d, x, ref = net
    path = d / "strided.param"
    formats.convert("ncnn", formats.ConvertSource(model, d / "model.onnx", SHAPE), path)
    strided = np.ascontiguousarray(np.repeat(x, 2, axis=3))[:, :, :, ::2]  # same values, not C-contiguous
    assert not strided.flags["C_CONTIGUOUS"]
    with backends.open_runner("ncnn", RunnerRequest(path, threads=1)) as r:
        got = np.concatenate([r.infer(strided[i:i + 1]) for i in range(len(x))])
        for _ in range(3):  # other allocations in between reuse freed memory
            np.ones((64, 3, 64, 64), np.float32)
            got = np.concatenate([got[:0], *[r.infer(strided[i:i + 1]) for i in range(len(x))]])
    assert float(np.abs(got - ref).max()) < 1e-4


def test_ncnn_converts_from_relative_paths(net, monkeypatch):
    """`edgekit export --out out/x --format ncnn`: the staging folder's paths are relative to where edgekit runs,
    and pnnx runs in a folder of its own (on EfficientNet-Lite0 it read nothing: "read_proto_from_binary failed")."""
    need("ncnn")
    model, d, _, _ = net
    monkeypatch.chdir(d.parent)
    rel = Path(d.name)
    formats.convert("ncnn", formats.ConvertSource(model, rel / "model.onnx", SHAPE), rel / "relative.param")
    assert (d / "relative.param").stat().st_size > 0 and (d / "relative.bin").stat().st_size > 0


def test_ort_writes_the_operator_config_a_mobile_build_needs(net):
    _, d, _, _ = net
    path = d / "cfg.ort"
    formats.convert("ort", formats.ConvertSource(None, d / "model.onnx", SHAPE), path)
    config = (d / "cfg.required_operators.config").read_text()
    assert "Conv" in config and "Gemm" in config or "MatMul" in config


def test_litert_int8_io_arithmetic():
    """An int8 .tflite's app quantizes with the input's (scale, zero point) and dequantizes the logits."""
    from edgekit.backends.litert import dequantize_io, quantize_io

    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    q = quantize_io(np.array([0.0, 1.0, 0.3, -0.3, 100.0, -100.0], np.float32), detail)
    assert q.tolist() == [-3, -1, -2, -4, 127, -128] and q.dtype == np.int8  # rounded to nearest, then clipped
    assert dequantize_io(q, detail).tolist() == [0.0, 1.0, 0.5, -0.5, 65.0, -62.5]
    assert quantize_io(np.ones(2, np.float32), {"dtype": np.float32}) is not None


def test_doctor_has_a_round_trip_row_per_mobile_runtime():
    """doctor checks every registered backend; a mobile runtime's row converts the tiny model with its format's
    converter first (ncnn here: the fastest; conformance runs LiteRT and ExecuTorch)."""
    from edgekit.pipeline.doctor import BACKENDS, round_trip, versions

    assert {"litert", "executorch", "ncnn"} <= set(BACKENDS)
    assert {"ai-edge-litert", "executorch", "ncnn", "coremltools"} <= set(versions())
    need("ncnn")
    (row,) = round_trip(("ncnn",))
    assert row["verdict"] == "pass" and row["max_abs_diff"] < 1e-4 and row["top1_agreement"] == 100.0, row
