"""The TensorRT runner and the GPU compute timing, on the double: numbers against onnxruntime on the same file,
every TensorRT return value checked, compute time as trtexec takes it."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError

from .models import classifier, images, ort_logits


def _engine(tmp_path, double, onnx, precision="fp32", **build):
    from edgekit.backends.tensorrt.build import engine_from_onnx
    from edgekit.backends.tensorrt.options import BuildOptions

    engine = tmp_path / "m.engine"
    info = engine_from_onnx(onnx, engine, BuildOptions(precision, **build))
    return engine, info


@pytest.mark.parametrize("version,buffers", [("10.3.0", "cuda-python"), ("11.4.1", "cuda-python"),
                                             ("10.3.0", "pycuda")])
def test_engine_reproduces_onnxruntime(double, tmp_path, version, buffers):
    double.install(version, cuda_python=buffers == "cuda-python", pycuda=buffers == "pycuda")
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    onnx = classifier(tmp_path / "m.onnx")
    engine, info = _engine(tmp_path, double, onnx)
    assert info["cache"] == "miss" and info["layers"]["precision"] == {"fp32": 3}
    x = images(4)
    with TensorRTRunner(engine) as r:
        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(4)])
        assert r.describe()["buffers"] == buffers and r.describe()["gpu"] == "NVIDIA H100 80GB HBM3"
    np.testing.assert_allclose(got, ort_logits(onnx, x), rtol=1e-5, atol=1e-5)


def test_fp16_io_engine_runs(double, tmp_path):
    """An engine with FP16 inputs and outputs (TensorRT 11's FP16-in-graph, ModelOpt AutoCast's default): its
    page-locked buffers are float16, which crashed the cuda-python path before."""
    double.install("11.4.1")
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    onnx = classifier(tmp_path / "m16.onnx", fp16=True)
    engine, info = _engine(tmp_path, double, onnx, "fp16")
    assert info["layers"]["precision"] == {"fp16": 3}
    x = images(3)
    with TensorRTRunner(engine) as r:
        assert r._trt.nptype(r.engine.get_tensor_dtype("input")) is np.float16
        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(got, ort_logits(onnx, x), rtol=1e-3, atol=1e-3)


def test_batches_outside_the_profile_are_refused_not_garbled(double, tmp_path):
    """set_input_shape returns False for a batch above the profile's max; ignored, the buffers were sized from the
    context's -1 (or previous) dimensions."""
    double.install()
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    onnx = classifier(tmp_path / "dyn.onnx", dynamic=True)
    engine, _ = _engine(tmp_path, double, onnx, dynamic_batch=(1, 2, 4))
    x = images(8)
    with TensorRTRunner(engine) as r:
        assert r.batch_range() == (1, 4) and r.max_batch == 4
        np.testing.assert_allclose(r.infer(x[:4]), ort_logits(onnx, x[:4]), rtol=1e-5, atol=1e-5)
        with pytest.raises(EdgekitError, match=r"batch 8 is outside m\.engine's optimization profile \(batch 1\.\.4\)"):
            r.infer(x)
        r.context.set_input_shape = lambda name, shape: False  # TensorRT refusing a shape it should take
        r._bound = None
        with pytest.raises(EdgekitError, match=r"TensorRT refused input shape \[2, 3, 32, 32\]"):
            r.infer(x[:2])


def test_a_failed_enqueue_is_an_error_not_a_time(double, tmp_path):
    """execute_async_v3 returns False: the compute timing went on and timed empty events as "GPU compute"."""
    double.install()
    from edgekit.backends.tensorrt.runner import TensorRTRunner
    from edgekit.measure.gpu import gpu_compute_ms
    from edgekit.measure.timing import TimingOptions

    engine, _ = _engine(tmp_path, double, classifier(tmp_path / "m.onnx"))
    with TensorRTRunner(engine) as r:
        r.infer(images(1))
        double.gpu.faults["enqueue"] = True
        with pytest.raises(EdgekitError, match=r"TensorRT failed to enqueue m\.engine \(.*injected failure\)"):
            gpu_compute_ms(r, images(1), 1, TimingOptions(warmup=2, repeats=5))
        with pytest.raises(EdgekitError, match="TensorRT failed to enqueue"):
            r.infer(images(1))


@pytest.mark.parametrize("buffers,method", [("cuda-python", "CUDA graph"), ("pycuda", "back-to-back enqueues")])
def test_gpu_compute_is_device_time_as_trtexec_takes_it(double, tmp_path, buffers, method):
    """Per-iteration events around a host enqueue and a sync measured the launch gap too (0.04 ms of host enqueue
    on a 0.35 ms kernel here: 11% over); back to back between events (or from a CUDA graph) it is the kernel's."""
    from .device import Costs

    double.install(cuda_python=buffers == "cuda-python", pycuda=buffers == "pycuda", costs=Costs())
    from edgekit.backends.tensorrt.runner import TensorRTRunner
    from edgekit.measure.gpu import gpu_compute_ms
    from edgekit.measure.timing import TimingOptions
    from edgekit.stats import latency_stats

    onnx = classifier(tmp_path / "dyn.onnx", dynamic=True)
    engine, _ = _engine(tmp_path, double, onnx, dynamic_batch=(1, 8, 8))
    c = double.gpu.costs
    with TensorRTRunner(engine) as r:
        for batch in (1, 8):
            times, how = gpu_compute_ms(r, images(3), batch, TimingOptions(warmup=3, repeats=20))
            kernel = c.kernel_base + c.kernel_per_image * batch
            assert latency_stats(times)["median_ms"] == pytest.approx(kernel, rel=1e-6) and how.startswith(method)
            assert latency_stats(times)["max_ms"] == pytest.approx(kernel, rel=1e-6)  # no launch gap in any
        # and the end-to-end inference right after still computes the right numbers
        np.testing.assert_allclose(r.infer(images(8)), ort_logits(onnx, images(8)), rtol=1e-5, atol=1e-5)


def test_dla_engine_runs_on_its_core(double, tmp_path):
    """A --dla-core 1 engine: the runtime must be told the core before it deserializes the engine."""
    double.install("10.3.0", dla_cores=2, name="Orin", cc=(8, 7))
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    onnx = classifier(tmp_path / "m16.onnx", fp16=True)
    engine, info = _engine(tmp_path, double, onnx, "fp16", dla_core=1)
    assert info["recipe"]["network_flags"] == [] and info["recipe"]["builder_flags"] == ["FP16", "GPU_FALLBACK"]
    assert info["layers"]["device"] == {"DLA": 1, "GPU": 2} and info["dla_gpu_fallback_layers"] == ["gap", "fc"]
    with TensorRTRunner(engine, dla_core=1) as r:
        assert r.engine.dla_core_used == 1 and r.describe()["dla_core"] == 1
    assert "deserialize_cuda_engine DLA_core=1" in double.gpu.calls


def test_an_engine_from_another_tensorrt_is_refused_with_its_reason(double, tmp_path):
    double.install("10.3.0")
    engine, _ = _engine(tmp_path, double, classifier(tmp_path / "m.onnx"))
    double.install("11.4.1")
    from edgekit.backends.tensorrt.runner import TensorRTRunner

    with pytest.raises(EdgekitError, match=r"m\.engine cannot be deserialized here \(TensorRT said: .*Version tag "
                                           r"does not match.*Serialized Engine Version: 10\.3\.0"):
        TensorRTRunner(engine).activate()


def test_backend_open_builds_the_asked_profile_and_cleans_up(double, tmp_path):
    """The backend hard-coded a 1-8-32 profile and left every engine in a mkdtemp folder."""
    double.install()
    from edgekit.backends import registry
    from edgekit.backends.base import RunnerRequest

    onnx = classifier(tmp_path / "dyn.onnx", dynamic=True)
    runner = registry.open_runner("tensorrt", RunnerRequest(onnx, device="cuda", options={"batch_profile": (1, 4, 16)}))
    folder = runner.engine_path.parent
    with runner as r:
        assert r.batch_range() == (1, 16) and folder.is_dir()
        np.testing.assert_allclose(r.infer(images(16)), ort_logits(onnx, images(16)), rtol=1e-5, atol=1e-5)
    assert not folder.exists()
    plain = registry.open_runner("tensorrt", RunnerRequest(onnx, device="cuda", work_dir=tmp_path))
    with plain as r:
        assert r.batch_range() == (1, 1)  # no profile asked: the engine takes batch 1 only, and says so
        with pytest.raises(EdgekitError, match=r"batch 2 is outside"):
            r.infer(images(2))
    assert (tmp_path / "dyn.engine").exists()  # the caller's folder is the caller's
