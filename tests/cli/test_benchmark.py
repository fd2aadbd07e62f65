"""`edgekit benchmark`: one table of every format asked for, its JSON and the Pareto chart; a format that fails is
a row with its reason and the command still exits 0 (the table is the result)."""

from __future__ import annotations

import json

import pytest

from edgekit._optional import available


def test_benchmark_writes_the_table_json_and_chart(cli, tmp_path, monkeypatch):
    if not (available("ncnn") and available("pnnx")):
        pytest.skip("ncnn, pnnx not installed (edgekit's [ncnn] extra)")
    for absent in ("coremltools", "litert_torch", "executorch"):  # extras absent under --format all (the default)...
        monkeypatch.setitem(__import__("sys").modules, absent, None)
    out = tmp_path / "b"
    code, stdout, err = cli("benchmark", "squeezenet1_1", "--weights", "random", "--input-size", "32", "--threads",
                            "1", "--out", out)
    assert code == 0, err
    doc = json.loads((out / "benchmark.json").read_text())
    rows = {(r["format"], r["precision"]): r for r in doc["rows"]}
    assert set(rows) == {(f, "fp32") for f in ("onnx", "tflite", "pte", "ort", "ncnn", "coreml")}
    for key in (("onnx", "fp32"), ("ort", "fp32"), ("ncnn", "fp32")):
        r = rows[key]
        assert r["status"] == "checked" and r["check"]["top1_agreement"] == 100.0 and r["check"]["max_abs_diff"] < 1e-4
        lat = r["latency"]
        assert lat["sweeps"] == 3 and len(lat["sweeps_ms"]) == 3 and 0 < lat["median_ms"] < 1000
    mobile = out / "mobile"
    assert rows[("ort", "fp32")]["bytes"] == (mobile / "model.ort").stat().st_size
    assert rows[("ncnn", "fp32")]["bytes"] == sum((mobile / f).stat().st_size for f in ("model.param", "model.bin"))
    # ...are rows that say which package to install, not a crash
    for fmt, extra in (("coreml", "coreml"), ("tflite", "litert"), ("pte", "executorch")):
        assert rows[(fmt, "fp32")]["status"] == "failed" and f"[{extra}] extra" in rows[(fmt, "fp32")]["reason"]
    assert doc["metric"] == "top-1 agreement with torch %"  # random weights: no accuracy to claim
    assert (out / "pareto.png").stat().st_size > 10_000
    assert "edgekit formats" in stdout and "coreml" in stdout
    app = json.loads((out / "mobile" / "model.json").read_text())
    assert set(app["files"]) == {"model.ort", "model.param"} and app["preprocess"]["crop_size"] == 32
