"""The Jetson bundle and `edgekit build` on the board, on the double: what the board prints and writes, the
tolerance scaled to the sample count, the samples spread over the classes, the trtexec line per TensorRT."""

from __future__ import annotations

import json
import os
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from .models import classifier, images, ort_logits, tensorrt_int8


def _bundle(tmp_path, n: int = 7, precision: str = "int8", build: dict | None = None):
    from edgekit.pipeline.jetson import BundleModel, BundleSamples, write_bundle

    tmp_path.mkdir(parents=True, exist_ok=True)
    fp32 = classifier(tmp_path / "model.onnx")
    lowp = (tensorrt_int8(fp32, tmp_path / "model_int8.onnx") if precision == "int8" else
            classifier(tmp_path / "model_fp16.onnx", fp16=True))
    x = images(n)
    y = np.arange(n) % 10
    model = BundleModel("tiny", lowp, precision, {"crop_size": 32}, None, 10)
    write_bundle(tmp_path / "bundle", model, BundleSamples(x, y, ort_logits(fp32, x), ort_logits(lowp, x)),
                 build or {}, None, {"host": "test"})
    return tmp_path / "bundle"


def test_board_build_prints_compute_end_to_end_and_the_verdict(double, cli, tmp_path):
    """`edgekit build` printed only the end-to-end batch-1 row; the GPU compute time, how it was taken, the check
    against the host and its verdict are the board's answer."""
    double.install("10.3.0", name="Orin", cc=(8, 7))
    bundle = _bundle(tmp_path)
    code, out, err = cli("build", bundle, "--repeats", "5", "--out", tmp_path / "b")
    assert code == 0, err
    rep = json.loads((tmp_path / "b/report.json").read_text())
    c = double.gpu.costs
    assert rep["gpu_compute"]["batch1"]["median_ms"] == pytest.approx(c.kernel_base + c.kernel_per_image)
    assert rep["gpu_compute"]["batch1"]["method"] == "CUDA graph" and rep["verdict"] == "pass"
    assert rep["measured"]["flips"] == 0 and rep["measured"]["n"] == 7 and rep["failures"] == []
    text = " ".join(out.split())
    for shown in ("GPU compute b1 │ median 0.350 ms", "(CUDA graph)", "latency batch1", "check │ PASS: 0 of 7 images "
                  "flip against the host's file (at most 1)", "tensorrt b1 │ end to end", "engine layers: int8 3"):
        assert shown in text, shown


def test_a_broken_engine_fails_with_its_table_and_one_line(double, cli, tmp_path):
    double.install("10.3.0", faults={"tamper": lambda v: -v})  # every logit negated: another top-1 everywhere
    bundle = _bundle(tmp_path, n=12)
    code, out, err = cli("build", bundle, "--repeats", "3", "--out", tmp_path / "b")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "the engine's top-1 differs from the host's INT8 file on 12 of 12 images (at most 1" in err
    text = " ".join(out.split())
    assert "check │ FAIL: 12 of 12 images flip" in text and "failure │" in text and "GPU compute b1" in text
    assert json.loads((tmp_path / "b/report.json").read_text())["verdict"] == "fail"


def test_the_tolerance_scales_with_the_samples(tmp_path):
    """A fixed 2 points whatever the sample count: with the 7 built-in photos one flip is 14.3 points, so a healthy
    engine failed the README's own Jetson example."""
    from edgekit.pipeline.engine_check import tolerance
    from edgekit.pipeline.jetson import judge

    manifest = json.loads((_bundle(tmp_path, n=7) / "manifest.json").read_text())
    tol = manifest["tolerance"]
    assert tol["max_flips"] == 1 and tol["agreement_points"] == pytest.approx(100 / 7) and tol["n"] == 7
    exp = manifest["expected"]["agreement"]
    one_flip = {"agreement": exp - 100 / 7, "top1": None, "flips": 1}
    assert judge(manifest, one_flip) == []
    two = judge(manifest, {"agreement": exp - 200 / 7, "top1": None, "flips": 2})
    assert two[0].startswith("the engine's top-1 differs from the host's INT8 file on 2 of 7 images")
    assert tolerance(256)["max_flips"] == 7 and tolerance(1000)["agreement_points"] == pytest.approx(1.8)
    assert tolerance(7)["detects_flip_rate"] > 0.4 > tolerance(256)["detects_flip_rate"] * 8


def test_bundle_samples_spread_over_the_classes(digits, digits_pre, tmp_path):
    """The first 256 images of a class-sorted folder hold the first classes only: picked by index round-robin over
    the labels, every class is there, and only those images are read."""
    from edgekit.data.images import scan
    from edgekit.data.stream import ImageStream
    from edgekit.pipeline.bundle import board_samples, bundle_stage

    images_ = ImageStream(scan(digits[1], num_classes=10), digits_pre)
    assert len(set(images_.labels[:256])) < 10  # what the old first-256 sample held
    source = SimpleNamespace(name="tiny", preprocess=digits_pre, pretrained=True, categories=None, num_classes=10)
    ctx = SimpleNamespace(images=images_, source=source, tmp=tmp_path, threads=1,
                          fp32_path=classifier(tmp_path / "model.onnx"))
    x, y = board_samples(ctx)
    counts = np.bincount(y, minlength=10)
    assert len(x) == 256 and set(counts) <= {25, 26}  # 256 over 10 classes, as even as can be
    lowp = tensorrt_int8(ctx.fp32_path, tmp_path / "model_int8.onnx")
    section = bundle_stage(ctx, lowp, "int8", {}, None)
    saved = np.load(tmp_path / "bundle" / "samples.npz")
    assert set(saved["labels"]) == set(range(10)) and saved["lowp_logits"].shape == (256, 10)
    assert section["tolerance"]["max_flips"] == 7


def _run_script(bundle, version: str, tmp_path):
    stub = tmp_path / "trtexec"
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    env = {**os.environ, "TENSORRT_VERSION": version, "TRTEXEC": str(stub)}
    return subprocess.run(["sh", str(bundle / "trtexec.sh")], capture_output=True, text=True, env=env)


def test_trtexec_script_runs_the_line_of_the_board_s_tensorrt(tmp_path):
    """JetPack 7 boards got the 10.x line, with the 11.4.1 line commented out."""
    bundle = _bundle(tmp_path)
    r10, r11 = _run_script(bundle, "10.3.0.30", tmp_path), _run_script(bundle, "11.4.1", tmp_path)
    assert r10.returncode == 0 and "--stronglyTyped" in r10.stdout and "--useCudaGraph" in r10.stdout
    assert r11.returncode == 0 and "--stronglyTyped" not in r11.stdout and "--onnx=model_int8.onnx" in r11.stdout
    bad = _run_script(bundle, "", tmp_path)
    assert bad.returncode == 2 and "cannot tell this board's TensorRT version" in bad.stderr


def test_dla_bundle_lines_and_the_board_s_dla_core(double, cli, tmp_path):
    """An INT8 DLA bundle: TensorRT 10.3 cannot build it from Q/DQ (its line says why); an FP16 one builds there,
    and the board's runtime runs it on the manifest's core."""
    int8 = _bundle(tmp_path / "a", build={"dla_core": 1})
    r10 = _run_script(int8, "10.3.0", tmp_path)
    assert r10.returncode == 2 and "runs INT8 on the DLA only from a calibration cache" in r10.stderr
    assert "--useDLACore=1" in _run_script(int8, "11.4.1", tmp_path).stdout
    fp16 = _bundle(tmp_path / "b", precision="fp16", build={"dla_core": 1})
    assert "--fp16" in _run_script(fp16, "10.3", tmp_path).stdout
    double.install("10.3.0", dla_cores=2, name="Orin", cc=(8, 7))
    code, out, err = cli("build", fp16, "--repeats", "3", "--out", tmp_path / "b/out")
    assert code == 0, err
    assert "deserialize_cuda_engine DLA_core=1" in double.gpu.calls
    rep = json.loads((tmp_path / "b/out/report.json").read_text())
    assert rep["backend"]["dla_core"] == 1 and rep["build"]["layers"]["device"]["DLA"] == 1
    assert rep["gpu_compute"]["batch1"]["method"].startswith("CUDA graph")


def test_a_bundle_the_board_cannot_trust_is_refused_in_one_line(tmp_path):
    import shutil

    from edgekit.errors import EdgekitError
    from edgekit.pipeline.jetson import judge, read_manifest, validate_manifest

    bundle = _bundle(tmp_path)
    doc = read_manifest(bundle)
    assert validate_manifest(doc) == [] and validate_manifest([]) == ["the manifest is not a JSON object"]
    assert validate_manifest({k: v for k, v in doc.items() if k != "expected"})[0] == "missing expected"
    assert validate_manifest({**doc, "model": 3}) == ["model should be a str"]
    bad = {**doc, "edgekit_bundle": 9, "precision": "fp32", "onnx": "../x.onnx", "expected": {},
           "tolerance": {"agreement_points": -1}, "input_shape": [1, 3]}
    bad["expected"]["top1"] = 90.0
    problems = validate_manifest(bad)
    assert problems[:3] == ["bundle version 9 (this edgekit reads 1)", "precision 'fp32' (a Jetson bundle carries "
                            "int8 or fp16)", "files must list the ONNX and the samples with their sha256"]
    assert "../x.onnx lies outside the bundle folder" in problems[3] and len(problems) == 8
    with pytest.raises(EdgekitError, match="manifest.json not found: pass a folder written by"):
        read_manifest(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "manifest.json").write_text("{")
    with pytest.raises(EdgekitError, match="is not valid JSON"):
        read_manifest(copy)
    (copy / "manifest.json").write_text(json.dumps({**doc, "precision": "fp32"}))
    with pytest.raises(EdgekitError, match="is not a valid bundle manifest: precision 'fp32'"):
        read_manifest(copy)
    (copy / "manifest.json").write_text(json.dumps(doc))
    with open(copy / "model_int8.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(EdgekitError, match="model_int8.onnx is missing or changed since the bundle was made"):
        read_manifest(copy)
    exp = doc["expected"]
    assert judge({**doc, "expected": {**exp, "top1": 50.0}}, {"agreement": exp["agreement"], "top1": 30.0}) == [
        "top-1 30.00% < host 50.00% - 14.29"]
    assert judge({**doc, "budgets": {"max_latency_ms": 1.0}}, {"agreement": exp["agreement"], "top1": None,
                                                                  "latency_ms": 2.0}) == [
        "batch-1 latency 2.000 ms > the recipe's budget 1.0 ms"]


def test_a_dynamic_batch_bundle_times_its_profile_s_max(double, cli, tmp_path):
    """A bundle built with a batch profile: the board measures its max batch too, and feeds the samples in
    batches the profile takes (a short last batch padded to the profile's min)."""
    from edgekit.pipeline.jetson import BundleModel, BundleSamples, write_bundle

    double.install("10.3.0")
    tmp_path.mkdir(exist_ok=True)
    dyn = classifier(tmp_path / "model_fp16.onnx", dynamic=True, fp16=True)
    fp32 = classifier(tmp_path / "model.onnx", dynamic=True)
    x = images(5)  # batches of 4 and 1: the 1 padded to the profile's min of 2
    write_bundle(tmp_path / "bundle", BundleModel("tiny", dyn, "fp16", {"crop_size": 32}, None, 10),
                 BundleSamples(x, None, ort_logits(fp32, x), ort_logits(dyn, x)), {"dynamic_batch": (2, 2, 4)}, None,
                 {})
    code, out, err = cli("build", tmp_path / "bundle", "--repeats", "3", "--out", tmp_path / "b")
    assert code == 0, err
    rep = json.loads((tmp_path / "b/report.json").read_text())
    assert [(r["runtime"], r["batch"]) for r in rep["throughput"]] == [("tensorrt", 2), ("tensorrt", 4)]
    assert list(rep["gpu_compute"]) == ["batch2"] and "GPU compute b2 │ median 0.400 ms" in " ".join(out.split())
    assert rep["measured"]["flips"] == 0 and rep["verdict"] == "pass"
