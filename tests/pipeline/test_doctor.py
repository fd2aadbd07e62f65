"""`edgekit doctor` on this CPU machine: a real round trip through onnxruntime, OpenVINO and torch, TensorRT's
reason, the JSON, the Jetson reads (from a stand-in root and stand-in commands), and a board without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doctor_json():
    """One real run (export with torch.onnx, compile, infer): --json with the three CPU backends named."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "edgekit", "doctor", "--json", "-b", "onnxruntime,openvino",
                        "--backend", "torch"], capture_output=True, text=True, env=env, timeout=600)
    return r


def test_cpu_backends_pass_with_a_numeric_agreement(doctor_json):
    assert doctor_json.returncode == 0, doctor_json.stderr
    doc = json.loads(doctor_json.stdout)
    rows = {(r["backend"], r["device"]): r for r in doc["round_trip"]}
    assert set(rows) >= {("torch", "cpu"), ("onnxruntime", "cpu"), ("openvino", "cpu")}
    for key in (("torch", "cpu"), ("onnxruntime", "cpu"), ("openvino", "cpu")):
        r = rows[key]
        # fp32 on the same CPU: the three agree with torch to float rounding, far inside the 1e-4 bound
        assert r["verdict"] == "pass" and r["top1_agreement"] == 100.0 and r["max_abs_diff"] < 1e-4, r
        assert "vs PyTorch eager" in r["detail"]
    assert doc["ok"] is True and doc["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert doc["versions"]["onnxruntime"][0].isdigit() and "CPUExecutionProvider" in doc["versions"][
        "onnxruntime providers"]
    assert doc["jetson"]["nvpmodel"].startswith("n/a (not a Jetson")


def test_tensorrt_named_but_absent_exits_1_with_the_reason(cli):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    code, out, err = cli("doctor", "--backend", "tensorrt", "--json")
    assert code == 1
    doc = json.loads(out)
    (row,) = doc["round_trip"]
    assert row["backend"] == "tensorrt" and row["verdict"] == "n/a" and doc["ok"] is False
    assert "TensorRT is not installed" in row["detail"] and "TensorRT is not installed" in err
    assert "no GPU here either" in err  # and why the GPU cannot be used: cudaErrorInsufficientDriver or no library
    code, _, err = cli("doctor", "--backend", "tensorflow")
    assert code == 2 and "unknown backend 'tensorflow'" in err


def test_jetson_reads_from_the_board(tmp_path, monkeypatch):
    from edgekit.pipeline.doctor import clocks_locked, jetson_facts

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: "
                                                   "generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    scripts = {"nvpmodel": "echo 'NV Power Mode: MAXN_SUPER'; echo 2",
               "jetson_clocks": "echo 'GPU MinFreq=1020000000 MaxFreq=1020000000 CurrentFreq=1020000000'",
               "dpkg-query": "echo 6.2.1+b38"}
    for name, body in scripts.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    facts = jetson_facts(tmp_path)
    assert facts == {"l4t": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: "
                            "Wed Jan  8 01:49:37 UTC 2025", "jetpack": "6.2.1+b38",
                     "nvpmodel": "NV Power Mode: MAXN_SUPER / 2", "clocks_locked": "yes"}
    assert not clocks_locked("GPU MinFreq=306000000 MaxFreq=1020000000 CurrentFreq=612000000")
    (bin_ / "nvpmodel").write_text("#!/bin/sh\necho 'NVPM ERROR: failed to read' >&2\nexit 1\n")
    assert jetson_facts(tmp_path)["nvpmodel"].startswith("n/a (nvpmodel -q exited 1: NVPM ERROR")


def test_board_without_torch_doctor_and_build(tmp_path):
    """The board install (`pip install --no-deps edgekit` + BOARD_REQUIREMENTS, the bundle README's lines): with
    every other third-party package made unimportable (torch, openvino, cuda-python, PIL, yaml, ...), doctor and
    build still import and answer; what is optional reads n/a."""
    code = f"""
import re, sys
from importlib.metadata import packages_distributions, requires
from edgekit.pipeline.jetson import BOARD_REQUIREMENTS

def name(req):
    return re.split(r'[<>=!~; \\[]', req, maxsplit=1)[0].strip().lower().replace('_', '-')

todo, dists = [name(r) for r in BOARD_REQUIREMENTS], set()
while todo:  # the board requirements and what they require in turn (no extras)
    d = todo.pop()
    if d in dists:
        continue
    dists.add(d)
    try:
        todo += [name(r) for r in requires(d) or [] if 'extra ==' not in r]
    except Exception:
        pass
allowed = {{top for top, ds in packages_distributions().items()
            if any(x.lower().replace('_', '-') in dists for x in ds)}} | set(sys.stdlib_module_names) | {{'edgekit'}}

class Board:
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split('.')[0]
        if top not in allowed and not top.startswith('_'):
            raise ModuleNotFoundError(f"No module named {{top!r}} (not on the board)", name=top)

sys.meta_path.insert(0, Board())
from edgekit.cli import main
for argv in (['doctor', '--json'], ['build', {str(tmp_path / 'nobundle')!r}]):
    sys.argv = ['edgekit', *argv]
    try:
        main()
    except SystemExit as e:
        print('EXIT', argv[0], e.code, file=sys.stderr)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.stdout.startswith("{"), r.stderr[-2000:]
    doc = json.loads(r.stdout)
    rows = {r_["backend"]: r_ for r_ in doc["round_trip"]}
    assert rows["onnxruntime"]["verdict"] == "pass" and "no torch here" in rows["onnxruntime"]["detail"]
    assert rows["torch"]["verdict"] == rows["openvino"]["verdict"] == rows["tensorrt"]["verdict"] == "n/a"
    assert doc["versions"]["torch"] == "n/a (No module named 'torch' (not on the board))"
    assert "EXIT doctor" not in r.stderr  # n/a backends do not fail doctor when none is named
    assert "EXIT build 2" in r.stderr and "nobundle/manifest.json not found" in r.stderr
