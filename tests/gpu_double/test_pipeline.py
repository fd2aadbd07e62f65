"""The export's TensorRT engine stage on the double: built, checked against its ONNX file (a broken engine fails
the export), timed beside PyTorch, and shown in the table; and the batch-profile refusal before any work."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import DIGITS_FLAGS

from edgekit.errors import BudgetExceededError, EdgekitError

from .models import classifier, images


def test_export_builds_checks_and_shows_the_engine(double, cli, digits, digits_model, tmp_path):
    """The export's table showed no engine, no GPU compute and no PyTorch rows (they were in the JSON only)."""
    double.install("10.3.0")
    out = tmp_path / "out"
    code, stdout, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--eval-data", digits[1],
                            "--max-images", "24", "--backend", "tensorrt", "--out", out, *DIGITS_FLAGS)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    e = rep["engine"]
    assert e["flips_vs_onnx"] == 0 and e["tolerance"]["n"] == 24 and e["accuracy"]["n"] == 24
    assert e["agreement_with_fp32"]["top1_agreement"] == 100.0  # the engine runs model.onnx itself here
    (row,) = e["gpu_side_by_side"]
    c = double.gpu.costs
    assert row["compute_median_ms"] == pytest.approx(c.kernel_base + c.kernel_per_image)
    assert row["compute_method"] == "CUDA graph" and row["host_copies"] == "pinned"
    assert any("no PyTorch side by side: torch" in n and "sees no CUDA GPU" in n for n in rep["notes"])
    text = " ".join(stdout.split())
    for shown in ("engine │ model.engine for NVIDIA H100 80GB HBM3 (TensorRT 10.3.0)", "engine check │ 0 of 24 "
                  "images flip against its ONNX file (at most", "tensorrt b1 │ end to end", "GPU compute 0.350 ms "
                  "(graph)", f"wrote {out}/model.onnx, {out}/report.json, {out}/report.md, {out}/model.engine"):
        assert shown in text, shown


def _ctx(tmp_path, digits, digits_pre):
    from edgekit.data.images import scan
    from edgekit.data.stream import ImageStream

    source = SimpleNamespace(name="tiny", weights="random", torch_model=None, pretrained=True, preprocess=digits_pre,
                             input_shape=[1, 3, 32, 32], weights_sha256=None, categories=None, num_classes=10)
    return SimpleNamespace(source=source, fp32_path=classifier(tmp_path / "model.onnx"), notes=[], progress=None,
                           threads=1, tmp=tmp_path,
                           images=ImageStream(scan(digits[1], num_classes=10), digits_pre).subset(range(0, 359, 9)))


def test_a_broken_engine_fails_the_export_in_one_line(double, digits, digits_pre, tmp_path):
    """The stage computed the engine's agreement with FP32 and compared it to nothing: a broken engine exited 0."""
    from edgekit.pipeline.tensorrt import engine_stage

    ctx = _ctx(tmp_path, digits, digits_pre)
    double.install("11.4.1")
    section = engine_stage(ctx, ctx.fp32_path, "fp32", {})
    assert section["flips_vs_onnx"] == 0 and section["tolerance"]["n"] == 40
    double.install("11.4.1", faults={"tamper": lambda v: v[:, ::-1].copy()})  # the classes in reverse order
    with pytest.raises(BudgetExceededError) as exc:
        engine_stage(ctx, ctx.fp32_path, "fp32", {})
    msg = str(exc.value)
    assert msg.startswith("the engine model.engine disagrees with model.onnx: its top-1 differs from onnxruntime's "
                          "on the same file for ") and "\n" not in msg
    assert "of 40 images (a healthy engine: at most" in msg


def test_pytorch_rows_copy_and_time_like_the_engine(double, monkeypatch, tmp_path):
    """The side by side copied from page-locked buffers for TensorRT and from pageable numpy for torch: both rows
    now say their copies, and both have GPU compute taken the same way (events, back to back)."""
    double.install()
    from edgekit.backends import torch as torch_backend
    from edgekit.measure import gpu
    from edgekit.measure.timing import TimingOptions

    made = []

    class CudaTorch:  # stands in for TorchRunner on CUDA, which needs a GPU torch (the device check runs the real one)
        def __init__(self, model, device, fp16, channels_last, input_shape):
            self.host_copies = "pinned" if device == "cuda" else None
            made.append((device, fp16, channels_last))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def infer(self, x):
            return np.zeros((len(x), 10), np.float32)

        def launcher(self, batch, x):
            return (lambda: None), (lambda fn, n: [0.5] * n), "back-to-back launches (PyTorch eager: no CUDA graph)"

    monkeypatch.setattr(torch_backend, "TorchRunner", CudaTorch)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    src = SimpleNamespace(torch_model=object(), input_shape=(1, 3, 32, 32))
    monkeypatch.setattr(gpu, "torch_twin", lambda source, path, notes: source.torch_model)
    rows = gpu.torch_cuda_rows(src, None, images(2), 4, TimingOptions(warmup=1, repeats=3), None, [])
    assert made == [("cuda", False, False), ("cuda", True, True)]
    notes: list[str] = []
    monkeypatch.setattr(gpu, "torch_twin", lambda source, path, notes: None)
    assert gpu.torch_cuda_rows(src, None, images(2), 4, TimingOptions(warmup=1, repeats=3), None, notes) == []
    assert [(r["runtime"], r["batch"], r["host_copies"], r["compute_median_ms"]) for r in rows] == [
        ("torch fp32", 1, "pinned", 0.5), ("torch fp32", 4, "pinned", 0.5),
        ("torch fp16 channels_last", 1, "pinned", 0.5), ("torch fp16 channels_last", 4, "pinned", 0.5)]


def test_no_twin_for_a_model_that_cannot_be_opened(tmp_path):
    from edgekit.measure.gpu import torch_twin

    notes: list[str] = []
    src = SimpleNamespace(torch_model=None, name="no_such_model", weights="imagenet")
    assert torch_twin(src, tmp_path / "m.onnx", notes) is None
    assert notes[0].startswith("no PyTorch side by side: the model 'no_such_model' with weights 'imagenet' named in "
                               "m.onnx cannot be opened here (")


def test_a_dynamic_batch_without_a_profile_is_refused_before_any_work(cli, tmp_path):
    """options.py named `--dynamic-batch MIN,OPT,MAX` (the flag is --batch-profile), and only after calibration."""
    code, out, err = cli("export", "mobilenet_v2", "--weights", "random", "--dynamic-batch", "--target", "jetson",
                         "--int8", "--out", tmp_path / "o")
    assert code == 2 and "add --batch-profile MIN,OPT,MAX (e.g. 1,8,32), or drop --dynamic-batch" in err
    assert not (tmp_path / "o").exists()
    dyn = classifier(tmp_path / "dyn.onnx", dynamic=True)
    code, _, err = cli("export", dyn, "--backend", "tensorrt", "--out", tmp_path / "o")
    assert code == 2 and "dyn.onnx has a dynamic batch and a TensorRT engine needs its optimization profile" in err
    static = classifier(tmp_path / "static.onnx")
    code, _, err = cli("export", static, "--target", "jetson", "--fp16", "--batch-profile", "1,2,4")
    assert code == 2 and "--batch-profile needs a dynamic batch, and static.onnx has a fixed one" in err
    from edgekit.backends.tensorrt.options import BuildOptions

    with pytest.raises(EdgekitError, match=r"--batch-profile 4,2,8: need 1 <= min <= opt <= max"):
        BuildOptions("fp32", dynamic_batch=(4, 2, 8))


def test_profile_on_tensorrt_builds_the_batch_it_times(double, cli, tmp_path):
    """`edgekit profile --backend tensorrt --batch 4` on a dynamic-batch file: the engine's profile covers batch 4
    (the backend's hard-coded 1-8-32 is gone), and the GPU rows are in the table."""
    double.install("10.3.0")
    dyn = classifier(tmp_path / "dyn.onnx", dynamic=True)
    code, out, err = cli("profile", dyn, "--backend", "tensorrt", "--device", "cuda", "--batch", "4", "--repeats",
                         "5", "--warmup", "1", "--input-size", "32", "--resize-size", "32", "--out", tmp_path / "p")
    assert code == 0, err
    rep = json.loads((tmp_path / "p/report.json").read_text())
    assert [(r["runtime"], r["batch"]) for r in rep["gpu_side_by_side"]] == [("tensorrt", 1), ("tensorrt", 4)]
    assert "tensorrt b4 │ end to end" in " ".join(out.split())
