"""`edgekit doctor`'s GPU rows on the double: a GPU machine, a machine whose CUDA library cannot describe its device,
bindings that raise, the older cuda-python layout, and no driver."""

from __future__ import annotations

import json
import sys

from .cudart import package


def test_doctor_on_a_gpu_machine_builds_and_checks_a_tiny_engine(double, cli):
    double.install("10.3.0")
    code, out, err = cli("doctor", "--backend", "tensorrt", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["gpu"]["gpu"] == "NVIDIA H100 80GB HBM3" and doc["gpu"]["compute_capability"] == "9.0"
    assert doc["gpu"]["libraries"]["cuda-python"] == 1
    assert doc["versions"]["cuda runtime"] == "12.6" and doc["versions"]["cuda driver"] == "12.8"
    assert doc["versions"]["tensorrt"] == "10.3.0"
    (row,) = [r for r in doc["round_trip"] if r["backend"] == "tensorrt"]
    assert row["verdict"] == "pass" and row["device"] == "cuda" and row["top1_agreement"] == 100.0, row


def test_a_gpu_that_cannot_be_described_is_a_row_not_a_crash(double):
    """gpu_identity() was unguarded: a library that counts a device and fails to describe it crashed doctor."""
    double.install("10.3.0", faults={"cudaGetDeviceProperties": "cudaErrorInitializationError",
                                     "raise_versions": "libcudart.so.12: cannot open shared object file"})
    from edgekit.pipeline.doctor import gpu_facts, versions

    facts = gpu_facts()
    assert facts["gpu"] == ("n/a (CUDA call cudaGetDeviceProperties failed: cudaErrorInitializationError (3))")
    v = versions()
    assert v["cuda runtime"] == "n/a (cudaRuntimeGetVersion raised libcudart.so.12: cannot open shared object file)"
    assert v["cuda driver"].startswith("n/a (cudaDriverGetVersion raised")


def test_the_older_cuda_python_layout_is_read(double, monkeypatch):
    """cuda-python before 12.6 has ``cuda.cudart``, not ``cuda.bindings.runtime``: doctor tried only the latter."""
    double.install("10.3.0")
    rt = double.rt
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda", package("cuda", cudart=rt))
    monkeypatch.setitem(sys.modules, "cuda.cudart", rt)
    from edgekit.pipeline.doctor import gpu_facts, versions

    assert versions()["cuda runtime"] == "12.6" and gpu_facts()["gpu"] == "NVIDIA H100 80GB HBM3"


def test_no_driver_reads_na_with_the_reason(double, cli):
    double.install("10.3.0", driver=False)
    from edgekit.pipeline.doctor import gpu_facts, versions

    facts = gpu_facts()
    assert facts["gpu"].startswith("n/a (cuda-python: cudaErrorInsufficientDriver (35)")
    assert versions()["cuda driver"] == "n/a (no NVIDIA driver: libcuda is not loaded)"
    code, out, err = cli("doctor", "--backend", "tensorrt", "--json")
    assert code == 1 and "TensorRT is installed but no NVIDIA GPU is reachable (cuda-python: cudaErrorInsufficient" \
        in err
    double.install("10.3.0", cuda_python=False)
    said = versions()["cuda runtime"]
    assert said == "n/a (cuda-python: import of cuda.bindings.runtime halted; None in sys.modules)"
