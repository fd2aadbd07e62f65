"""benchmarks/peers.py's goal table (issue #14): a ratio between two rows that run the same engine is a tie."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from peers import engine_key, family_ratios, goals, paired_ratio, ratio_row  # noqa: E402


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


def test_the_head_to_head_times_the_choice_against_every_peer_near_the_fastest_in_budget():
    from peers import contenders

    ok = [_row("ort-fp32", 1.0, "fp32"), _row("openvino-fp32", 1.2, "ov"), _row("pytorch-fp32", 1.3, "pt"),
          _row("ort-int8-default", 0.5, "int8", drop=3.0), _row("edgekit@0.5 (onnxruntime-int8)", 0.9, "mine"),
          _row("edgekit+prune@0.5 (onnxruntime-pruned-0.5-int8)", 0.4, "pruned")]
    # within 1.25x of the fastest in-budget peer (1.0 ms): ort-fp32 and openvino-fp32, not pytorch-fp32 (1.3 ms),
    # not the faster peer over budget; and each search's choice
    assert contenders(ok, [0.5], ["edgekit", "edgekit+prune"]) == [
        "ort-fp32", "openvino-fp32", "edgekit@0.5 (onnxruntime-int8)",
        "edgekit+prune@0.5 (onnxruntime-pruned-0.5-int8)"]
    # a 4-point budget lets the INT8 peer in: the fastest, and now nothing else is near it
    assert contenders(ok, [4.0], ["edgekit"]) == ["ort-int8-default", "edgekit@0.5 (onnxruntime-int8)"]


def test_the_paired_ratio_is_taken_round_by_round_against_the_fastest_peer_over_the_rounds():
    # busy spells slow both engines in rounds 3-4, and only the peer in round 5: the ratio of the medians (0.8 ms
    # over 2.0, 0.4x) would credit edgekit with the noise; round by round it is 0.8x in four rounds of five
    times = {"mine": [0.8, 0.8, 1.6, 1.6, 0.8], "ort-fp32": [1.0, 1.0, 2.0, 2.0, 2.0],
             "openvino-fp32": [2.1] * 5}
    p = paired_ratio(times, "mine", ["ort-fp32", "openvino-fp32"])
    assert p["best_peer"] == "ort-fp32" and p["rounds"] == 5  # median 2.0 ms against 2.1
    assert p["ratio"] == pytest.approx(0.8) and p["min"] == pytest.approx(0.4) and p["max"] == pytest.approx(0.8)
    assert paired_ratio(times, "mine", ["a peer not timed"]) is None
    assert paired_ratio(times, "mine", ["mine"]) is None  # edgekit's own row is no peer


def test_the_goal_is_also_read_from_the_head_to_head():
    rows = []
    for fam, sweeps, rounds in (("a", 0.8, [0.85] * 5), ("b", 0.8, [0.88] * 5),
                                ("c", 0.95, [0.86, 0.86, 0.9, 0.8, 0.7]), ("d", 0.95, [1.0] * 5)):
        ok = [{**_row("ort-fp32", 1.0, "fp32"), "model": fam},
              {**_row("edgekit@0.5 (onnxruntime-int8)", sweeps, "mine"), "model": fam}]
        paired = {"ort-fp32": [1.0] * 5, "edgekit@0.5 (onnxruntime-int8)": rounds}
        rows.append(ratio_row(fam, ok, 0.5, paired=paired))
    g = goals(rows, [0.5])["0.5"]
    assert g["at_most_0.9x"] == ["a", "b"] and not g["met"]  # by the sweeps: two families
    p = g["paired"]
    assert p["at_most_0.9x"] == ["a", "b", "c"] and p["above_1.0x"] == [] and p["met"]
    assert p["upper_quartile_at_most_0.9x"] == ["a", "b", "c"]
    assert g["families"]["c"]["paired"]["q25"] == pytest.approx(0.8)
    del rows[0]["paired"]  # a family without a head-to-head: the goal cannot be read that way
    assert goals(rows, [0.5])["0.5"]["paired"] is None


def test_the_harness_head_to_head_loads_every_engine_once_and_closes_each():
    import numpy as np
    from peers import head_to_head

    opened, closed = [], []

    def make(name, ms):
        def open_engine():
            opened.append(name)
            return (lambda x: __import__("time").sleep(ms / 1e3)), (lambda: closed.append(name))
        return open_engine

    times = head_to_head({"a": make("a", 1), "b": make("b", 3)}, np.zeros((1, 2)), rounds=3, warmup=1, repeats=2,
                         pause_s=0.0)
    assert opened == ["a", "b"] and sorted(closed) == ["a", "b"]
    assert [len(times["a"]), len(times["b"])] == [3, 3] and all(b > a for a, b in zip(times["a"], times["b"]))
