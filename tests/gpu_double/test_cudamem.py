"""CUDA memory, streams and events through ``cudamem`` (cuda-python, pycuda, torch), on the double's device."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError, MissingDependencyError


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
def test_host_buffers_of_every_dtype_round_trip_through_the_device(double, dtype):
    """numpy's ctypes bridge has no half type: ``np.ctypeslib.as_ctypes_type(np.float16)`` raised
    NotImplementedError, so every engine with FP16 inputs or outputs crashed in the cuda-python buffers."""
    double.install()
    from edgekit.backends.tensorrt.cudamem import open_memory

    mem = open_memory("cuda-python")
    try:
        src, dst = mem.host((2, 3), dtype), mem.host((2, 3), dtype)
        src[:] = np.arange(6).reshape(2, 3).astype(dtype)
        dev = mem.device(src.nbytes)
        mem.to_device(dev, src)
        mem.to_host(dst, dev)
        assert not dst.any()  # nothing reaches the host before the stream is synchronized
        mem.synchronize()
        assert dst.dtype == np.dtype(dtype) and (dst == src).all()
        assert double.gpu.is_pinned(src.ctypes.data, src.nbytes)  # page-locked: the copies are asynchronous
    finally:
        mem.close()
    assert double.gpu.device == {} and double.gpu.pinned == {}  # close frees every buffer


def test_cuda_errors_are_one_line_with_their_name(double):
    double.install(memory=1 << 20)
    from edgekit.backends.tensorrt.cudamem import open_memory

    mem = open_memory()
    with pytest.raises(EdgekitError, match=r"^CUDA call cudaMalloc failed: cudaErrorMemoryAllocation \(2\)$"):
        mem.device(2 << 20)
    dev = mem.device(16)
    with pytest.raises(EdgekitError, match=r"cudaMemcpyAsync to device failed: cudaErrorInvalidValue \(1\)"):
        mem.to_device(dev, mem.host((8,), np.float32))  # 32 bytes into a 16-byte allocation
    with pytest.raises(EdgekitError, match=r"buffer shape \[-1, 3\] has an unset dimension"):
        mem.host((-1, 3), np.float32)
    mem.close()


def test_event_intervals_are_device_time_and_graphs_replay(double):
    """Back to back between events, the figure is the kernel's device time, not the host's enqueue gaps."""
    double.install()
    from edgekit.backends.tensorrt.cudamem import open_memory

    mem = open_memory()
    kernel = lambda: double.gpu.enqueue(mem.stream, 0.5, lambda: None, host_ms=0.01)  # noqa: E731
    times = mem.event_intervals(kernel, 5)
    # from an idle stream the first launch waits for the host's enqueue (0.01 ms); after it the stream stays busy
    assert times == pytest.approx([0.51] + [0.5] * 4)
    graph = mem.capture(kernel)
    assert graph() is None and mem.event_intervals(graph, 3)[1:] == pytest.approx([0.5] * 2)
    mem.close()


def test_capture_refuses_to_synchronize_and_reports_it(double):
    double.install()
    from edgekit.backends.tensorrt.cudamem import open_memory

    mem = open_memory()
    with pytest.raises(EdgekitError, match="cudaStreamSynchronize failed: cudaErrorStreamCaptureUnsupported"):
        mem.capture(mem.synchronize)
    mem.close()


def test_pycuda_buffers_and_events(double):
    double.install(cuda_python=False, pycuda=True)
    from edgekit.backends.tensorrt.cudamem import installed_libraries, open_memory

    assert installed_libraries() == {"pycuda"}
    mem = open_memory()
    assert mem.name == "pycuda"
    src, dst = mem.host((4,), np.float16), mem.host((4,), np.float16)
    src[:] = [1, 2, 3, 4]
    dev = mem.device(src.nbytes)
    mem.to_device(dev, src)
    mem.to_host(dst, dev)
    mem.synchronize()
    assert (dst == src).all()
    kernel = lambda: double.gpu.enqueue(mem.stream, 0.25, lambda: None, host_ms=0.01)  # noqa: E731
    assert mem.event_intervals(kernel, 4)[1:] == pytest.approx([0.25] * 3)
    with pytest.raises(EdgekitError, match="captures CUDA graphs through cuda-python only"):
        mem.capture(kernel)
    mem.close()
    assert double.gpu.device == {}


def test_torch_buffers_and_events(double):
    double.install()
    from edgekit.backends.tensorrt.othermem import TorchMemory

    mem = TorchMemory(double.torch())
    src, dst = mem.host((3, 2), np.float16), mem.host((3, 2), np.float16)
    src[:] = np.arange(6).reshape(3, 2)
    dev = mem.device(src.nbytes)
    mem.to_device(dev, src)
    mem.to_host(dst, dev)
    mem.synchronize()
    assert (dst == src).all() and mem.name == "torch"
    kernel = lambda: double.gpu.enqueue(mem.stream, 0.125, lambda: None, host_ms=0.01)  # noqa: E731
    assert mem.event_intervals(kernel, 3)[1:] == pytest.approx([0.125] * 2)
    with pytest.raises(EdgekitError, match="through cuda-python only"):
        mem.capture(kernel)
    with pytest.raises(EdgekitError, match="not allocated by this TorchMemory"):
        mem.to_device(12345, src)
    mem.close()
    double.gpu.driver = False
    with pytest.raises(EdgekitError, match="torch sees none"):
        TorchMemory(double.torch())


def test_probes_name_why_no_gpu(double):
    """A library that imports is not a GPU: without a driver cuda-python answers cudaErrorInsufficientDriver."""
    double.install(driver=False, pycuda=True)
    from edgekit.backends.tensorrt.cudamem import installed_libraries, no_device_reason, open_memory, probe_devices

    probes = probe_devices()
    assert probes["cuda-python"] == (0, "cudaErrorInsufficientDriver (35): CUDA driver version is insufficient for "
                                        "CUDA runtime version")
    assert probes["pycuda"][0] == 0 and "RuntimeError" in probes["pycuda"][1]
    assert installed_libraries() == set() and "cuda-python: cudaErrorInsufficientDriver" in no_device_reason(probes)
    with pytest.raises(MissingDependencyError, match="no CUDA library for TensorRT's buffers"):
        open_memory()
    with pytest.raises(MissingDependencyError, match=r"pycuda is not installed \(or sees no GPU\): pip install"):
        open_memory("pycuda")
