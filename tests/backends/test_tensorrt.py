"""TensorRT 10/11 decisions as pure functions, the Jetson bundle, and the GPU paths (run where a GPU is)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import DIGITS_FLAGS

from edgekit.backends.tensorrt.options import BuildOptions, GraphFacts, build_recipe, parse_version
from edgekit.backends.tensorrt.trtexec import cache_key, trtexec_command
from edgekit.errors import EdgekitError, MissingDependencyError

QDQ = GraphFacts("int8", 120, True, "input", (1, 3, 224, 224))
ASYM = GraphFacts("int8", 120, False, "input", (1, 3, 224, 224))
FP32 = GraphFacts("fp32", 0, True, "input", (1, 3, 224, 224))
FP16 = GraphFacts("fp16", 0, True, "input", (1, 3, 224, 224))
DYN = GraphFacts("fp32", 0, True, "input", (None, 3, 224, 224))


def test_version_switches():
    assert parse_version("10.3.0.30") == (10, 3, 0) and parse_version("11.4") == (11, 4, 0)
    r10 = build_recipe(BuildOptions("int8"), (10, 3, 0), QDQ)
    assert r10["network_flags"] == ["STRONGLY_TYPED"] and r10["builder_flags"] == []  # no INT8 flag, no calibrator
    r11 = build_recipe(BuildOptions("int8"), (11, 4, 1), QDQ)
    assert r11["network_flags"] == [] and r11["builder_flags"] == []  # strongly typed always; flag removed
    assert build_recipe(BuildOptions("fp16"), (10, 3, 0), FP32)["builder_flags"] == ["FP16"]
    assert build_recipe(BuildOptions("fp16"), (10, 16, 0), FP16)["network_flags"] == ["STRONGLY_TYPED"]
    assert build_recipe(BuildOptions("fp16"), (11, 0, 0), FP16) ["builder_flags"] == []
    with pytest.raises(EdgekitError, match="TensorRT 11 takes FP16 from the graph only: export with --fp16"):
        build_recipe(BuildOptions("fp16"), (11, 4, 0), FP32)
    with pytest.raises(EdgekitError, match="too old"):
        build_recipe(BuildOptions("int8"), (8, 6, 1), QDQ)


def test_int8_needs_symmetric_qdq():
    with pytest.raises(EdgekitError, match="INT8 only from Q/DQ nodes: export with --int8 --target tensorrt"):
        build_recipe(BuildOptions("int8"), (10, 3, 0), FP32)
    with pytest.raises(EdgekitError, match="breaks TensorRT's parser rules"):
        build_recipe(BuildOptions("int8"), (10, 3, 0), ASYM)
    with pytest.raises(EdgekitError, match="fp32 asked for a int8 graph"):
        build_recipe(BuildOptions("fp32"), (10, 3, 0), QDQ)


def test_flags_dla_sparsity_profiles():
    r = build_recipe(BuildOptions("int8", sparsity=True, dla_core=0, workspace_mb=512,
                                  builder_optimization_level=5), (11, 4, 1), QDQ)
    assert r["builder_flags"] == ["SPARSE_WEIGHTS", "GPU_FALLBACK"] and r["device"] == "DLA"
    assert r["workspace_bytes"] == 512 << 20 and r["builder_optimization_level"] == 5
    p = build_recipe(BuildOptions("fp32", dynamic_batch=(1, 8, 32)), (11, 4, 0), DYN)["profile"]
    assert p == {"input": "input", "min": (1, 3, 224, 224), "opt": (8, 3, 224, 224), "max": (32, 3, 224, 224)}
    with pytest.raises(EdgekitError, match="dynamic batch: pass --batch-profile MIN,OPT,MAX"):
        build_recipe(BuildOptions("fp32"), (10, 3, 0), DYN)
    with pytest.raises(EdgekitError, match="--batch-profile needs an ONNX exported with a dynamic batch"):
        build_recipe(BuildOptions("fp32", dynamic_batch=(1, 1, 4)), (10, 3, 0), FP32)
    with pytest.raises(EdgekitError, match="DLA needs static shapes"):
        BuildOptions("int8", dynamic_batch=(1, 2, 4), dla_core=0)
    with pytest.raises(EdgekitError, match="DLA runs FP16 or INT8 only"):
        BuildOptions("fp32", dla_core=1)
    with pytest.raises(EdgekitError, match="1 <= min <= opt <= max"):
        BuildOptions("fp32", dynamic_batch=(4, 2, 8))


def test_cache_key_covers_every_mismatch():
    base = ("10.3.0", "Orin", (8, 7), BuildOptions("int8"), "a" * 64)
    key = cache_key(*base)
    assert key == cache_key(*base) and len(key) == 64
    variants = [("10.3.1",) + base[1:], base[:1] + ("RTX 4090",) + base[2:], base[:2] + ((8, 9),) + base[3:],
                base[:3] + (BuildOptions("int8", sparsity=True),) + base[4:], base[:4] + ("b" * 64,)]
    assert len({cache_key(*v) for v in variants} | {key}) == 6


def test_trtexec_lines_pin_the_timing_flags():
    line10 = trtexec_command("m.onnx", "m.engine", BuildOptions("fp16"), 10, FP32)
    assert "--fp16" in line10 and "--useCudaGraph" in line10 and "--int8" not in line10
    line11 = trtexec_command("m.onnx", "m.engine", BuildOptions("int8", dla_core=0), (11, 4, 1), QDQ)
    assert "--fp16" not in line11 and "--int8" not in line11 and "--stronglyTyped" not in line11
    assert "--useDLACore=0 --allowGPUFallback" in line11 and "--noDataTransfers" not in line11  # 11.x: a no-op
    dyn = trtexec_command("m.onnx", "m.engine", BuildOptions("fp32", dynamic_batch=(1, 4, 8)), 10, DYN)
    assert "--minShapes=input:1x3x224x224" in dyn and "--maxShapes=input:8x3x224x224" in dyn


def test_graph_facts_tell_cpu_and_tensorrt_int8_apart(tmp_path):
    from helpers import tiny_onnx_classifier

    from edgekit.backends.tensorrt.onnx_rules import graph_facts
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard

    tiny_onnx_classifier(tmp_path / "t.onnx")
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    for target, symmetric in (("cpu", False), ("tensorrt", True)):
        quantize_with_guard(tmp_path / "t.onnx", tmp_path / f"{target}.onnx", QuantConfig(target=target),
                            x, tmp_path / f"{target}.json", "k")
        facts = graph_facts(tmp_path / f"{target}.onnx")
        assert facts.symmetric is symmetric and facts.qdq_nodes > 0 and facts.input_shape == (1, 3, 8, 8)
    assert graph_facts(tmp_path / "t.onnx").qdq_nodes == 0


def test_missing_tensorrt_says_how_to_get_it(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from edgekit.backends.tensorrt.build import engine_from_onnx

    with pytest.raises(MissingDependencyError, match=r"TensorRT is not installed: pip install 'tensorrt-cu12>=10'.*"
                                                     r"NVIDIA GPU"):
        engine_from_onnx(tmp_path / "m.onnx", tmp_path / "m.engine", BuildOptions())


def test_buffer_library_choice():
    from edgekit.backends.tensorrt.cudamem import choose_library

    assert choose_library({"torch", "pycuda", "cuda-python"}) == "cuda-python"  # NVIDIA's current choice first
    assert choose_library({"torch", "pycuda"}) == "pycuda"
    assert choose_library({"torch"}) == "torch"
    assert choose_library({"torch", "cuda-python"}, "torch") == "torch"
    with pytest.raises(MissingDependencyError, match=r"no CUDA library for TensorRT's buffers: pip install "
                                                     r"'cuda-python>=12,<13'.*NVIDIA GPU"):
        choose_library(set())
    with pytest.raises(MissingDependencyError, match="pycuda is not installed"):
        choose_library({"torch"}, "pycuda")
    with pytest.raises(EdgekitError, match="unknown CUDA buffer library 'cupy'"):
        choose_library({"torch"}, "cupy")


def test_cuda_python_results_are_checked():
    import enum

    from edgekit.backends.tensorrt.cudamem import _call

    class Err(enum.IntEnum):  # cuda-python's cudaError_t is an int enum; 0 is cudaSuccess
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    assert _call((Err(0), 1234), "cudaMalloc") == 1234
    assert _call((Err(0),), "cudaFree") is None
    assert _call((Err(0), 1, 2), "x") == (1, 2)
    with pytest.raises(EdgekitError, match=r"CUDA call cudaMalloc failed: cudaErrorMemoryAllocation \(2\)"):
        _call((Err(2), 0), "cudaMalloc")


def test_side_by_side_rows():
    from edgekit.backends.tensorrt.runner import throughput
    from edgekit.measure.gpu import batch_of, relative_to, row

    assert throughput(32, 4.0) == 8000.0
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    b = batch_of(x, 5)
    assert b.shape == (5, 3, 2, 2) and b.dtype == np.float32 and (b[2] == x[0]).all() and b.flags.c_contiguous
    e2e = {"median_ms": 2.0, "p99_ms": 3.0}
    rows = [row("tensorrt", 1, e2e, {"median_ms": 0.5}), row("tensorrt", 32, {"median_ms": 8.0, "p99_ms": 9.0},
                                                            {"median_ms": 6.0}),
            row("torch fp32", 1, {"median_ms": 5.0, "p99_ms": 6.0}, None),
            row("torch fp32", 32, {"median_ms": 40.0, "p99_ms": 41.0}, None)]
    assert rows[1]["images_per_s"] == 4000.0 and rows[0]["compute_median_ms"] == 0.5
    assert row("x", 4, None, {"median_ms": 2.0})["images_per_s"] == 2000.0
    rel = relative_to(rows, "torch fp32")
    assert [r["speedup_vs_torch_fp32"] for r in rel] == [2.5, 5.0, 1.0, 1.0]
    assert relative_to(rows[:2], "torch fp32")[0]["speedup_vs_torch_fp32"] is None


# --- the Jetson bundle -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(digits, digits_model, tmp_path_factory):
    import sys

    from edgekit.cli import main

    out = tmp_path_factory.mktemp("jetson") / "out"
    argv = ["edgekit", "export", "mobilenet_v2", "--weights", str(digits_model[0]), "--eval-data", str(digits[1]),
            "--target", "jetson", "--calib-data", str(digits[0]), "--calib-size", "128", "--out", str(out),
            "--calib-cache", str(out.parent / "c.json"), *DIGITS_FLAGS]
    old, sys.argv = sys.argv, argv
    try:
        main()
    finally:
        sys.argv = old
    return out / "bundle"


def test_bundle_manifest_and_onnx_agree_on_the_host(bundle):
    """What the board will check, checked here with onnxruntime: the manifest's preprocessing, the samples,
    and the expected agreement."""
    import onnxruntime as ort

    from edgekit.pipeline.jetson import read_manifest, validate_manifest
    from edgekit.stats import agreement

    doc = read_manifest(bundle)
    assert validate_manifest(doc) == [] and doc["precision"] == "int8" and doc["build"]["precision"] == "int8"
    assert doc["num_classes"] == 10 and doc["preprocess"]["crop_size"] == 32
    s = np.load(bundle / "samples.npz")
    assert s["x"].shape == (256, 3, 32, 32) and s["labels"].shape == (256,)
    assert set(np.bincount(s["labels"], minlength=10)) <= {25, 26}  # spread over the classes, not the first 256
    assert s["lowp_logits"].shape == (256, 10) and doc["tolerance"]["max_flips"] == 7
    sess = ort.InferenceSession(str(bundle / doc["onnx"]))
    logits = np.concatenate([sess.run(None, {doc["input_name"]: s["x"][i:i + 1]})[0] for i in range(len(s["x"]))])
    got = agreement(logits, s["fp32_logits"])["top1_agreement"]
    assert got >= doc["expected"]["agreement"] - doc["tolerance"]["agreement_points"]
    assert doc["expected"]["top1"] >= 90.0  # 256 samples, 1 image = 0.39 points: the model's ~97% less 18 images
    sh = (bundle / "trtexec.sh").read_text()
    assert "--stronglyTyped" in sh and "11.*) exec" in sh and "10.*) exec" in sh  # both lines run, by version
    assert "--timingCacheFile=model_int8.timing.cache" in sh  # the name the Python build writes
    readme = (bundle / "README.md").read_text()
    assert "pip install --no-deps ./edgekit-" in readme and "edgekit build ." in readme


def test_bundle_tampering_and_bad_manifests(bundle, tmp_path):
    import shutil

    from edgekit.pipeline.jetson import judge, read_manifest, validate_manifest

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    with open(copy / "model_int8.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(EdgekitError, match="model_int8.onnx is missing or changed"):
        read_manifest(copy)
    doc = json.loads((bundle / "manifest.json").read_text())
    assert "missing expected" in validate_manifest({k: v for k, v in doc.items() if k != "expected"})
    assert any("precision" in p for p in validate_manifest({**doc, "precision": "fp32"}))
    assert validate_manifest([]) == ["the manifest is not a JSON object"]
    assert judge(doc, {"agreement": doc["expected"]["agreement"], "top1": doc["expected"]["top1"]}) == []
    bad = judge(doc, {"agreement": doc["expected"]["agreement"] - 5, "top1": doc["expected"]["top1"] - 3})
    assert len(bad) == 2 and "agreement" in bad[0]


def test_build_without_tensorrt_is_one_clear_line(bundle, cli, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    code, _, err = cli("build", bundle, "--out", tmp_path / "b")
    assert code == 2 and "TensorRT is not installed: pip install 'tensorrt-cu12>=10'" in err
    assert not (tmp_path / "b").exists()


# --- GPU paths: run for real wherever a GPU is --------------------------------------------------------------

def _cuda():
    import torch

    return torch.cuda.is_available()


def test_torch_runner_leaves_the_callers_module_as_given(digits_model, digits, digits_pre):
    """A runner that converts the model (another device, FP16, channels_last) works on its own copy: on the H100,
    `edgekit profile --backend torch --device cuda` failed because the runner had moved the source's module to the
    GPU and the MACs count then exported it with a CPU input. channels_last shows the same on a CPU."""
    import torch

    from edgekit.backends.torch import TorchRunner
    from edgekit.data.images import load_array, scan

    model = digits_model[1]
    x, _ = load_array(scan(digits[1], num_classes=10).subset(range(8)), digits_pre)
    with TorchRunner(model, channels_last=True) as r:
        got = r.infer(x)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)  # not converted to channels_last in place
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU on this machine (CI has none); run on the device machine")
def test_torch_cuda_fp16_channels_last_agrees_with_cpu(digits_model, digits, digits_pre):
    from edgekit.backends.torch import TorchRunner
    from edgekit.data.images import load_array, scan
    from edgekit.stats import agreement

    x, _ = load_array(scan(digits[1], num_classes=10).subset(range(64)), digits_pre)
    with TorchRunner(digits_model[1]) as cpu:
        ref = cpu.infer(x)
    with TorchRunner(digits_model[1], device="cuda", fp16=True, channels_last=True) as gpu:
        got = gpu.infer(x)
    assert next(digits_model[1].parameters()).device.type == "cpu"  # the runner converted its own copy
    assert agreement(got, ref)["top1_agreement"] >= 98.0  # 64 images, 1 image = 1.6 points: one near-tie may flip


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU on this machine (CI has none)")
def test_tensorrt_engine_builds_and_agrees(bundle, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (see docs/tensorrt.md)")
    from edgekit.pipeline.board import build_bundle

    rep = build_bundle(bundle, tmp_path / "b", repeats=50)
    assert rep["failures"] == [] and rep["gpu_compute"]["batch1"]["median_ms"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU on this machine (CI has none); run on the device machine")
@pytest.mark.parametrize("lib", ["torch", "cuda-python", "pycuda"])
def test_buffers_round_trip_through_the_gpu(lib):
    from edgekit.backends.tensorrt.cudamem import installed_libraries, open_memory

    if lib not in installed_libraries():
        pytest.skip(f"{lib} is not installed on this GPU machine")
    mem = open_memory(lib)
    try:
        host_in, host_out = mem.host((4, 3), np.float32), mem.host((4, 3), np.float32)
        host_in[:] = np.arange(12, dtype=np.float32).reshape(4, 3)
        dev = mem.device(host_in.nbytes)
        mem.to_device(dev, host_in)
        mem.to_host(host_out, dev)
        mem.synchronize()
        assert (host_out == host_in).all()
        assert all(t > 0.0 for t in mem.event_intervals(lambda: mem.to_device(dev, host_in), 3))
    finally:
        mem.close()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU on this machine (CI has none); run on the device machine")
def test_torch_cuda_side_by_side(digits_model, digits, digits_pre):
    from edgekit.data.images import load_array, scan
    from edgekit.measure.gpu import torch_cuda_rows
    from edgekit.measure.timing import TimingOptions
    from edgekit.models.source import PreprocessOverrides, open_model

    src = open_model("mobilenet_v2", str(digits_model[0]),
                     overrides=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3))
    x, _ = load_array(scan(digits[1], num_classes=10).subset(range(8)), digits_pre)
    notes: list[str] = []
    rows = torch_cuda_rows(src, None, x, 16, TimingOptions(warmup=5, repeats=20), None, notes)
    assert [(r["runtime"], r["batch"]) for r in rows] == [("torch fp32", 1), ("torch fp32", 16),
                                                          ("torch fp16 channels_last", 1),
                                                          ("torch fp16 channels_last", 16)]
    assert all(r["e2e_median_ms"] > 0 and r["images_per_s"] > 0 for r in rows) and notes == []
