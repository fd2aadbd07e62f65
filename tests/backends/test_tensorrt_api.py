"""tools/check_tensorrt_api.py checks edgekit's TensorRT and cuda-python names against the real bindings; these
tests keep its list complete and run it where the package index is reachable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import check_tensorrt_api as api  # noqa: E402


def test_every_tensorrt_name_edgekit_uses_is_checked():
    src = "".join(p.read_text() for p in sorted((ROOT / "edgekit/backends/tensorrt").glob("*.py")))
    used = set(re.findall(r"\btrt\.([A-Za-z_]\w*(?:\.[A-Z]\w*)*)", src))
    listed = {p.removeprefix("10:") for p in api.TRT_PATHS}
    # getattr(trt.BuilderFlag, name): the members edgekit's recipes name are listed one by one
    assert {u for u in used if u not in listed and not any(p.startswith(u + ".") for p in listed)} == set()
    for flag in ("FP16", "SPARSE_WEIGHTS", "GPU_FALLBACK"):
        assert f'"{flag}"' in src and any(p.endswith(f"BuilderFlag.{flag}") for p in api.TRT_PATHS)
    files = ("edgekit/backends/tensorrt/cudamem.py", "edgekit/pipeline/doctor.py")
    cuda = "".join((ROOT / f).read_text() for f in files)
    called = set(re.findall(r"\b(?:rt|self\.rt|_cudart\(\))\.(cuda\w+(?:\.cuda\w+)?)", cuda))
    assert called and called - set(api.CUDART_PATHS) == set()


def test_cuda_python_paths_exist_in_the_installed_bindings():
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed")
    res = api.check_cudart()
    assert res["missing"] == [], res


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_tensorrt_paths_exist_in_the_real_bindings(version, tmp_path):
    """The bindings wheel of JetPack 6's TensorRT and of the newest, loaded over stand-in native libraries."""
    probe = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            f"tensorrt-cu12-bindings=={version}" if version.startswith("10") else
                            f"tensorrt-cu13-bindings=={version}", "-d", str(tmp_path / "wheels")],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the package index is not reachable here: {probe.stderr.strip().splitlines()[-1][:160]}")
    res = api.check_tensorrt(version, tmp_path)
    assert res.get("version") == version and res["missing"] == [], res


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_the_double_matches_the_real_bindings(version, tmp_path):
    """tests/gpu_double fakes TensorRT from these enums: each name and value must be the real bindings'."""
    from gpu_double.trt_enums import COMMON, REAL

    probe = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            f"tensorrt-cu12-bindings=={version}" if version.startswith("10") else
                            f"tensorrt-cu13-bindings=={version}", "-d", str(tmp_path / "wheels")],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the package index is not reachable here: {probe.stderr.strip().splitlines()[-1][:160]}")
    tables = {**COMMON, **REAL[version.split(".")[0]]}
    paths = {("ILogger.Severity" if k == "Severity" else k): list(v) for k, v in tables.items()}
    real = api.real_enum_values(version, tmp_path, paths)
    assert "error" not in real, real
    expected = {("ILogger.Severity" if k == "Severity" else k): v for k, v in tables.items()}
    assert real == expected
