"""benchmarks/gpu_check.py, the device check, tried here before a GPU ever runs it: without a GPU it says so and
exits 2; its cuda-python part passes on the double and fails loudly on a wrong copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_a_gpu_nothing_is_claimed(tmp_path):
    assert gpu_check.run(str(tmp_path / "c.json")) == 2
    doc = json.loads((tmp_path / "c.json").read_text())
    assert {p["status"] for p in doc["parts"]} == {"SKIP"} and len(doc["needs_tensorrt"]) == 8
    assert all(p["detail"].startswith(("no GPU: torch", "pycuda is not installed")) for p in doc["parts"])


def test_the_cuda_python_part_passes_on_the_double_and_fails_on_a_wrong_result(double, monkeypatch):
    double.install()
    monkeypatch.setattr(gpu_check.time, "perf_counter", lambda: double.gpu.host / 1e3)  # the double's clock
    rep: dict = {}
    gpu_check.part_cuda_python(rep)
    assert rep["figures"]["d2d_64MiB_ms_median"] > rep["figures"]["d2d_floor_ms"]
    from edgekit.backends.tensorrt.cudamem import CudaPythonMemory

    monkeypatch.setattr(CudaPythonMemory, "to_host", lambda self, dst, src: None)  # a copy that never happens
    with pytest.raises(gpu_check.Fail, match="float32 round trip changed the data"):
        gpu_check.part_cuda_python({})
    assert double.gpu.device == {}  # the part frees what it took, failing or not


def test_torch_memory_part_on_the_double(double, monkeypatch):
    double.install()
    from edgekit.backends.tensorrt import othermem

    real, torch = othermem.TorchMemory, double.torch()
    monkeypatch.setattr(othermem, "TorchMemory", lambda: real(torch))  # the double's torch CUDA, not this CPU's
    rep: dict = {}
    gpu_check.part_torch_memory(rep)
    assert rep["figures"]["h2d_5KiB_ms_median"] > 0  # (torch frees through its allocator: not modelled)
