"""The GPU side's less travelled paths, on the double: each failure a real machine can produce, said in one line."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgekit.errors import EdgekitError, MissingDependencyError

from .models import classifier, images


def _build(path, precision="fp32", **kw):
    from edgekit.backends.tensorrt.build import engine_from_onnx
    from edgekit.backends.tensorrt.options import BuildOptions

    return engine_from_onnx(path, path.with_suffix(".engine"), BuildOptions(precision, **kw))


def test_an_fp16_engine_without_half_layers_is_not_kept(double, tmp_path):
    """Others shipped "FP16" engines with no half layer: a graph that says fp16 but holds FP32 weights."""
    double.install("11.4.1")
    from edgekit.graph.export import write_onnx_with_meta
    from edgekit.graph.info import load_checked

    m = load_checked(classifier(tmp_path / "m.onnx"))
    write_onnx_with_meta(m, tmp_path / "liar.onnx", {"precision": "fp16"})
    with pytest.raises(EdgekitError, match=r"asked for FP16 but no layer runs in FP16 \(layers: fp32 3\); the "
                                           r"engine was not kept"):
        _build(tmp_path / "liar.onnx", "fp16")


def test_parser_errors_and_the_builder_level(double, tmp_path, monkeypatch):
    double.install("10.3.0")
    from onnx import helper

    from edgekit.graph.info import load_checked

    m = load_checked(classifier(tmp_path / "m.onnx"))
    relu = next(n for n in m.graph.node if n.op_type == "Relu")
    relu.domain = "com.example"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    import onnx

    onnx.save(m, str(tmp_path / "custom.onnx"))
    with pytest.raises(EdgekitError, match=r"TensorRT cannot parse .*custom\.onnx: In node 1 .*No importer registered "
                                           r"for op: Relu"):
        _build(tmp_path / "custom.onnx")
    from gpu_double.trt_build import IBuilderConfig

    monkeypatch.setattr(IBuilderConfig, "set_timing_cache", lambda self, cache, ignore_mismatch: False)
    info = _build(classifier(tmp_path / "lvl.onnx"), builder_optimization_level=5)
    assert info["recipe"]["builder_optimization_level"] == 5 and "the timing cache lvl.timing.cache was not used" \
        in info["warnings"]


def test_gpu_identity_from_pycuda_or_torch(double, monkeypatch):
    double.install("10.3.0", cuda_python=False, pycuda=True, name="Orin", cc=(8, 7))
    from edgekit.backends.tensorrt.build import gpu_identity

    assert gpu_identity() == ("Orin", (8, 7))
    double.install("10.3.0", cuda_python=False, pycuda=False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "torch's GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (8, 9))
    assert gpu_identity() == ("torch's GPU", (8, 9))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MissingDependencyError, match="no CUDA library sees a GPU here"):
        gpu_identity()


def test_cuda_python_without_its_runtime_module(double, monkeypatch):
    double.install()
    from edgekit.backends.tensorrt import cudamem
    from gpu_double.cudart import package

    monkeypatch.setitem(sys.modules, "cuda", package("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    n, why = cudamem.probe_devices()["cuda-python"]
    assert n == 0 and why.startswith("cuda-python is not installed: pip install 'cuda-python>=12,<13'")
    double.install(driver=False)
    monkeypatch.setattr(double.rt, "cudaGetErrorString", lambda err: 1 / 0)
    assert cudamem.probe_devices()["cuda-python"] == (0, "cudaErrorInsufficientDriver (35)")
    with pytest.raises(EdgekitError, match="torch sees none"):
        from edgekit.backends.tensorrt.othermem import TorchMemory

        TorchMemory()  # this machine's torch: built for the CPU


def _plan(tmp_path, double, io, profile=None):
    from gpu_double.trt_build import serialize_plan

    header = {"io": io, "profile": profile, "precision": "fp32", "device": "GPU", "dla_core": None, "verbosity": 2,
              "nodes": [], "version": double.trt.__version__, "cc": list(double.gpu.cc), "gpu": double.gpu.name,
              "gpu_fallback": False}
    (tmp_path / "x.engine").write_bytes(serialize_plan(header, classifier(tmp_path / "x.onnx").read_bytes()))
    return tmp_path / "x.engine"


def test_engines_built_elsewhere_that_edgekit_does_not_run(double, tmp_path):
    """trtexec can build what edgekit's own build never makes: two inputs, a dynamic batch with no profile."""
    double.install()
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    two = [{"name": "a", "mode": "INPUT", "elem": 1, "shape": [1, 3, 32, 32]},
           {"name": "b", "mode": "INPUT", "elem": 1, "shape": [1, 3, 32, 32]},
           {"name": "logits", "mode": "OUTPUT", "elem": 1, "shape": [1, 10]}]
    with pytest.raises(EdgekitError, match="edgekit runs single-input classifiers; this engine has 2 inputs"):
        TensorRTRunner(_plan(tmp_path, double, two)).activate()
    dyn = [{"name": "input", "mode": "INPUT", "elem": 1, "shape": [-1, 3, 32, 32]},
           {"name": "logits", "mode": "OUTPUT", "elem": 1, "shape": [-1, 10]}]
    with TensorRTRunner(_plan(tmp_path, double, dyn)) as r:
        with pytest.raises(EdgekitError, match="has a dynamic batch but no optimization profile for input"):
            r.infer(images(1))


def test_runner_refusals_and_facts(double, tmp_path, monkeypatch):
    double.install()
    from edgekit.backends.tensorrt import runner as runner_mod

    engine = tmp_path / "m.engine"
    _build(classifier(tmp_path / "m.onnx"))
    with runner_mod.TensorRTRunner(engine) as r:
        r.context.set_tensor_address = lambda name, ptr: False
        with pytest.raises(EdgekitError, match="TensorRT refused the device address of input"):
            r.infer(images(1))
        monkeypatch.setattr(runner_mod, "gpu_identity", lambda: (_ for _ in ()).throw(EdgekitError("no facts")))
        assert r.describe()["gpu"] == "n/a (no facts)"
        del r.context.set_tensor_address  # TensorRT's own again
        r._bound, real = None, r.context.get_tensor_shape
        r.context.get_tensor_shape = lambda name: (-1, 10) if name == "logits" else real(name)
        with pytest.raises(EdgekitError, match=r"TensorRT left logits without a shape \(\[-1, 10\]\)"):
            r.infer(images(1))
    assert runner_mod.throughput(8, 2.0) == 4000.0


def test_the_backend_removes_its_folder_when_the_build_fails(double, tmp_path, monkeypatch):
    double.install()
    import tempfile

    from edgekit.backends import registry
    from edgekit.backends.base import RunnerRequest
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard

    onnx = classifier(tmp_path / "m.onnx")
    quantize_with_guard(onnx, tmp_path / "cpu.onnx", QuantConfig(target="cpu"), images(16), tmp_path / "c.json", "k")
    made = []
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
    with pytest.raises(EdgekitError, match="would not parse in TensorRT"):
        registry.open_runner("tensorrt", RunnerRequest(tmp_path / "cpu.onnx", device="cuda"))
    assert made and not any(__import__("os").path.exists(d) for d in made)


def test_inspect_refuses_a_profile_shape_tensorrt_refuses(double, tmp_path, monkeypatch):
    double.install()
    from edgekit.backends.tensorrt.build import inspect_engine
    from gpu_double import tensorrt as fake

    plan = tmp_path / "d.engine"
    from edgekit.backends.tensorrt.build import engine_from_onnx
    from edgekit.backends.tensorrt.options import BuildOptions

    engine_from_onnx(classifier(tmp_path / "d.onnx", dynamic=True), plan, BuildOptions(dynamic_batch=(1, 2, 4)))
    engine = double.trt.Runtime(double.trt.Logger()).deserialize_cuda_engine(plan.read_bytes())
    ctx_cls = type(engine.create_execution_context())
    monkeypatch.setattr(ctx_cls, "set_input_shape", lambda self, name, shape: False)
    with pytest.raises(EdgekitError, match=r"TensorRT refused the profile's opt shape \(2, 3, 32, 32\) for input"):
        inspect_engine(double.trt, plan.read_bytes(), {"input": "input", "opt": (2, 3, 32, 32)})
    assert fake.Dims((1, 2)) == (1, 2)


def test_build_options_and_trtexec_edges(tmp_path):
    from edgekit.backends.tensorrt.options import (
        BuildOptions,
        GraphFacts,
        parse_batch_profile,
        parse_version,
        profile_refusal,
    )
    from edgekit.backends.tensorrt.trtexec import trtexec_command

    for text, said in (("1,8", "give min,opt,max batch sizes"), ("8,4,16", "need 1 <= min <= opt <= max")):
        with pytest.raises(EdgekitError, match=said):
            parse_batch_profile(text)
    assert parse_batch_profile(" 1, 8 ,32") == (1, 8, 32)
    with pytest.raises(EdgekitError, match="cannot read a TensorRT version from 'trt'"):
        parse_version("trt")
    for kw, said in ((dict(precision="int4"), "choose one of fp32, fp16, int8"),
                     (dict(precision="fp16", dynamic_batch=(1, 2, 4), dla_core=0), "DLA needs static shapes"),
                     (dict(precision="fp32", dla_core=0), "DLA runs FP16 or INT8 only"),
                     (dict(builder_optimization_level=7), "must lie in 0..5")):
        with pytest.raises(EdgekitError, match=said):
            BuildOptions(**kw)
    assert profile_refusal(str(tmp_path / "absent.onnx"), False, (1, 2, 4)) is None  # opening the model says why
    g = GraphFacts("fp16", 0, True, "input", (1, 3, 32, 32))
    line = trtexec_command("m.onnx", "m.engine", BuildOptions("fp16", sparsity=True, builder_optimization_level=2),
                           (11, 4, 1), g)
    assert "--sparsity=enable" in line and "--builderOptimizationLevel=2" in line


def test_engine_check_edges():
    from edgekit.backends.tensorrt.layers import layer_precision, tensor_dtype
    from edgekit.pipeline.engine_check import _binom_sf, flips, spread_indices
    from edgekit.report.gpu_rows import side_by_side

    assert tensor_dtype({"Format/Datatype": "N/A due to dynamic shapes"}) == "unknown"
    assert layer_precision({"Weights": {"Type": "Opaque"}, "Inputs": []}) == "unknown"
    row = {"runtime": "x", "batch": 1, "e2e_median_ms": None, "compute_median_ms": 1.0, "images_per_s": None}
    assert side_by_side([row]) == [("x b1", ", GPU compute 1.000 ms ()")]

    assert _binom_sf(0, 10, 0.0) == 0.0 and _binom_sf(3, 10, 1.0) == 1.0 and _binom_sf(10, 10, 1.0) == 0.0
    assert spread_indices(None, 4, 3) == [0, 1, 2] and spread_indices(None, 3, 100) == [0, 50, 99]
    assert flips(np.eye(3), np.eye(3)[::-1]) == 2


def test_doctor_reports_a_failing_engine_as_a_failing_row(double, cli):
    double.install("10.3.0", faults={"tamper": lambda v: v * -1.0})
    code, out, err = cli("doctor", "--backend", "tensorrt", "--json")
    assert code == 1
    (row,) = [r for r in json.loads(out)["round_trip"] if r["backend"] == "tensorrt"]
    assert row["verdict"] == "fail" and row["fix"] == "outputs disagree with the reference: report it with this output"
    double.install("10.3.0", faults={"enqueue": True})
    code, out, err = cli("doctor", "--backend", "tensorrt", "--json")
    (row,) = [r for r in json.loads(out)["round_trip"] if r["backend"] == "tensorrt"]
    assert code == 1 and row["verdict"] == "fail" and "TensorRT failed to enqueue tiny.engine" in row["detail"]
