"""benchmarks/peers.py's goal table (issue #14): a ratio between two rows that run the same engine is a tie."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from peers import engine_key, family_ratios, goals, ratio_row  # noqa: E402


def _factory(path, backend="onnxruntime", options=None):
    def make():
        raise AssertionError("not run")
    make.path, make.backend, make.options = Path(path), backend, dict(options or {})
    return make


def test_engine_key_is_the_bytes_the_backend_and_the_options(tmp_path):
    a, b, c = tmp_path / "a.onnx", tmp_path / "copy.onnx", tmp_path / "c.onnx"
    a.write_bytes(b"model")
    b.write_bytes(b"model")
    c.write_bytes(b"other")
    assert engine_key(_factory(a)) == engine_key(_factory(b))  # a copy elsewhere is the same engine
    assert engine_key(_factory(a)) != engine_key(_factory(c))
    assert engine_key(_factory(a)) != engine_key(_factory(a, options={"denormal_as_zero": True}))
    assert engine_key(_factory(a)) != engine_key(_factory(a, backend="openvino"))
    assert engine_key(lambda: None) is None  # a torch row holds no file


def _row(engine, ms, key, drop=0.0):
    return {"model": "m", "engine": engine, "b1_ms": ms, "b1_sweeps_ms": [ms] * 3, "drop": drop, "size_mb": 1.0,
            "engine_key": key}


def _goal(edgekit_key):
    rows = []
    for fam, ratio in (("a", 0.8), ("b", 0.8), ("c", 0.8), ("d", 1.02)):
        ok = [_row("ort-fp32", 1.0, "fp32"), _row("ort-int8-default", 0.5, "int8", drop=3.0),
              _row("edgekit@0.5 (onnxruntime-fp32)", ratio, edgekit_key if fam == "d" else "mine")]
        rows.append({**ratio_row(fam, ok, 0.5), "model": fam})
    return goals(rows, [0.5])["0.5"]


def test_above_one_on_the_peers_own_engine_is_a_tie():
    g = _goal("fp32")  # family d: edgekit chose the file (and options) the ort-fp32 peer runs, measured 1.02x
    assert g["above_1.0x"] == [] and g["above_1.0x_on_the_peers_own_engine"] == ["d"]
    assert g["met"] and not g["met_strict"]
    g = _goal("another file")  # the same 1.02x on an engine of edgekit's own is a loss
    assert g["above_1.0x"] == ["d"] and g["above_1.0x_on_the_peers_own_engine"] == []
    assert not g["met"] and not g["met_strict"]


def test_bad_inputs_are_refused_in_one_line(tmp_path):
    import json
    import subprocess

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    old = tmp_path / "old.json"  # a file from before --max-drop took several budgets
    old.write_text(json.dumps({"meta": {"max_drop": 1.0}, "rows": []}))
    r = subprocess.run([sys.executable, bench / "peers.py", "--summarize", old], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == (f"{old} predates the goal tables (one budget, no judged drops): "
                                                      "run peers.py again to get them")
    assert json.loads(old.read_text()) == {"meta": {"max_drop": 1.0}, "rows": []}  # not rewritten
    r = subprocess.run([sys.executable, bench / "drop_uncertainty.py", "--work", tmp_path, "--json",
                        tmp_path / "d.json"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == (f"{tmp_path} has no selection/ folder: pass the --work folder "
                                                      "of a finished `peers.py --trained` run")
    assert not (tmp_path / "d.json").exists()


def test_family_ratios_give_each_named_model_its_own_list():
    models = ["squeezenet1_1", "mobilenet_v3_small"]

    def error(msg):
        raise SystemExit(msg)

    assert family_ratios(["mobilenet_v3_small=0.5,0.7"], models, error) == {"mobilenet_v3_small": (0.5, 0.7)}
    assert family_ratios([], models, error) == {}
    for bad, says in [("resnet18=0.5", "not among --models"), ("squeezenet1_1=0.5,1.2", "each ratio in (0, 1)"),
                      ("squeezenet1_1=", "each ratio in (0, 1)"), ("squeezenet1_1=a", "each ratio in (0, 1)")]:
        try:
            family_ratios([bad], models, error)
        except SystemExit as exc:
            assert says in str(exc), (bad, exc)
        else:
            raise AssertionError(f"{bad} was accepted")
