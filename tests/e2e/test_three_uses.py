"""The three uses, exactly as a user types them: the installed `edgekit` command, in a fresh folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import DIGITS_FLAGS

EDGEKIT = str(Path(sys.executable).parent / "edgekit")


def run(*args, cwd, env=None, check=True):
    r = subprocess.run([EDGEKIT, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "COLUMNS": "200", **(env or {})})
    if check and r.returncode != 0:
        raise AssertionError(f"edgekit {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return r


def _has_tensorrt() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


@pytest.fixture
def fresh(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    return d


def test_installed_command_exists():
    assert Path(EDGEKIT).exists(), "pip install -e . puts the edgekit console script beside python"


def test_use1_export_squeezenet_int8_then_profile(fresh):
    r = run("export", "squeezenet", "--int8", "--weights", "random", "--out", "sq", "--threads", "2", cwd=fresh)
    rep = json.loads((fresh / "sq" / "report.json").read_text())
    assert rep["model"]["name"] == "squeezenet1_1"  # the family name resolves to the documented variant
    for f in ("model.onnx", rep["int8"]["file"], "report.md"):
        assert (fresh / "sq" / f).exists(), f
    assert "built-in photos" in r.stderr  # the calibration fallback is announced, not silent
    assert f"{rep['int8']['artifact']['size_mb']:.3f} MB" in r.stdout
    assert (fresh / "calibration" / "cache").is_dir()  # the documented default cache place

    r = run("profile", "sq/model_int8.onnx", "--threads", "2", "--repeats", "30", "--out", "prof", cwd=fresh)
    prof = json.loads((fresh / "prof" / "report.json").read_text())
    lat = prof["latency"]["batch1"]
    # the printed table and report.json say the same
    assert f"median {lat['median_ms']:.3f} ms" in r.stdout and f"{prof['artifact']['size_mb']:.3f} MB" in r.stdout
    assert prof["precision"] == "int8" and prof["artifact"]["sha256"] == rep["int8"]["artifact"]["sha256"]
    assert prof["artifact"]["qdq_nodes"] == rep["int8"]["qdq_nodes"]


@pytest.mark.slow  # the bundle is built and checked in-process in test_tensorrt.py
def test_use2_jetson_bundle(fresh, digits, digits_model):
    run("export", "mobilenet_v2", "--weights", digits_model[0], "--target", "jetson", "--calib-data", digits[0],
        "--calib-size", "128", "--eval-data", digits[1], "--out", "jet", *DIGITS_FLAGS, cwd=fresh)
    bundle = fresh / "jet" / "bundle"
    from edgekit.data.images import load_array, scan
    from edgekit.models.preprocess import Preprocess
    from edgekit.pipeline.jetson import read_manifest
    from edgekit.stats import accuracy

    doc = read_manifest(bundle)  # validates the schema and every file's sha256
    # the bundle's ONNX, fed real images prepared from the manifest alone, reaches the manifest's accuracy
    x, y = load_array(scan(digits[1], num_classes=doc["num_classes"]), Preprocess.from_dict(doc["preprocess"]))
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle / doc["onnx"]))
    logits = np.concatenate([sess.run(None, {doc["input_name"]: x[i:i + 1]})[0] for i in range(len(x))])
    assert accuracy(logits, y)["top1"] >= doc["expected"]["top1"] - doc["tolerance"]["top1_points"] - 1.0
    r = run("build", bundle, "--repeats", "20", cwd=fresh, check=False)
    if _has_tensorrt():  # on the device: the engine is built, profiled and agrees with the host's manifest
        assert r.returncode == 0, r.stderr
        built = json.loads((bundle / "build" / "report.json").read_text())
        assert built["failures"] == [] and built["latency"]["batch1"]["n"] == 20
        assert built["measured"]["agreement"] >= doc["expected"]["agreement"] - doc["tolerance"]["agreement_points"]
    else:  # CI: the bundle itself was checked above; the on-board step says what it needs, in one line
        assert r.returncode == 2 and "TensorRT is not installed: " in r.stderr and "Traceback" not in r.stderr
        assert "'edgekit[" not in r.stderr  # the index's edgekit is another project: never named bare


@pytest.mark.slow  # check's verdicts run in-process in test_recipes_check.py
def test_use3_ci_size_regression_gate(fresh, digits_model):
    """A baseline committed in a git repo; the pruning is removed, the gate fails; restored, it passes."""
    repo = fresh / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "ci@example.invalid")
    git("config", "user.name", "ci")
    ckpt = repo / "model.pth"
    ckpt.write_bytes(Path(digits_model[0]).read_bytes())
    build = ["export", "mobilenet_v2", "--weights", "model.pth", "--prune", "0.3", *DIGITS_FLAGS]
    run(*build, "--out", "baseline", cwd=repo)
    git("add", "baseline/report.json", "model.pth")
    git("commit", "-qm", "baseline")
    gate = ["check", "new/report.json", "--baseline", "baseline/report.json", "--max-size-growth", "2%"]

    run("export", "mobilenet_v2", "--weights", "model.pth", *DIGITS_FLAGS, "--out", "new", cwd=repo)  # pruning dropped
    r = run(*gate, cwd=repo, check=False)
    assert r.returncode == 1, r.stderr
    row = next(ln for ln in r.stdout.splitlines() if "size MB vs baseline" in ln)
    assert "FAIL" in row and re.search(r"\d+\.\d{3}", row)
    assert "regression" in r.stderr

    run(*build, "--out", "new", "--force", cwd=repo)  # restored
    r = run(*gate, cwd=repo)
    assert r.returncode == 0 and "pass" in r.stdout
    assert subprocess.run(["git", "status", "--porcelain", "baseline/report.json"], cwd=repo,
                          capture_output=True, text=True).stdout == ""  # the committed baseline is untouched


def test_first_errors_a_newcomer_meets(fresh, digits_model):
    offline = {"TORCH_HOME": str(fresh / "torch"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    r = run("export", "squeezenet", "--int8", "--out", "o", cwd=fresh, env=offline, check=False)
    assert r.returncode == 2 and "--weights random" in r.stderr and "hub" in r.stderr and not (fresh / "o").exists()
    (fresh / "empty").mkdir()
    r = run("export", "squeezenet", "--int8", "--weights", "random", "--calib-data", "empty", "--out", "o",
            cwd=fresh, check=False)
    assert r.returncode == 2 and "empty holds no images" in r.stderr
    r = run("profile", "x.onnx", "--backend", "tensorrt", cwd=fresh, check=False)
    if _has_tensorrt():  # TensorRT is there: the missing file is the problem
        assert r.returncode == 2 and "x.onnx not found" in r.stderr
    else:
        assert r.returncode == 2 and "TensorRT is not installed: pip install" in r.stderr
        assert "'edgekit[" not in r.stderr  # the index's edgekit is another project: never named bare
    (fresh / "o").mkdir()
    (fresh / "o" / "mine.txt").write_text("keep")
    r = run("export", "squeezenet", "--weights", "random", "--out", "o", cwd=fresh, check=False)
    assert r.returncode == 2 and "--force" in r.stderr and (fresh / "o" / "mine.txt").read_text() == "keep"
    r = run("export", "squeezenett", "--weights", "random", cwd=fresh, check=False)
    assert r.returncode == 2 and "Did you mean squeezenet" in r.stderr
    assert "Traceback" not in r.stderr
