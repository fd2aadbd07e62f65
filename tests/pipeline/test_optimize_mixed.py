"""Mixed precision, the selection/judge split and --time-budget inside `--optimize`: the pure logic, then one
real run on the digits model."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers import DIGITS_FLAGS, FakeClock, check_latency_choice

from edgekit.errors import EdgekitError
from edgekit.pipeline.candidates import Candidate, Measured, choose, mixed_ks, split_selection_judge
from edgekit.pipeline.clock import TimeBudget


def _m(name, ms, drop, backend="onnxruntime", precision="int8", k=0):
    cand = Candidate(name, backend, precision, float_nodes=tuple(f"conv{i}" for i in range(k)))
    return Measured(cand, ms, 1000, 90.0 - drop, drop)


def test_mixed_candidate_wins_where_full_int8_misses_the_budget():
    # the EfficientNet-Lite0 case: every full INT8 over a 1-point budget, the guard's 3-float-layer INT8 not
    ms = [_m("openvino-fp32", 6.67, 0.0, "openvino", "fp32"), _m("onnxruntime-int8", 3.5, 5.1),
          _m("openvino-int8", 3.2, 7.1, "openvino"), _m("openvino-int8-nncf", 3.3, 2.0, "openvino"),
          _m("onnxruntime-int8-mixed-3", 3.9, 0.44, k=3), _m("openvino-int8-mixed-3", 4.2, 0.44, "openvino", k=3),
          _m("onnxruntime-int8-mixed-1", 3.6, 1.8, k=1)]
    assert choose(ms, 1.0).candidate.name == "onnxruntime-int8-mixed-3"
    assert choose(ms, 0.4).candidate.name == "openvino-fp32"  # the mixed candidate too is over a 0.4 budget
    assert choose(ms, 1.9).candidate.name == "onnxruntime-int8-mixed-1"  # looser: fewer float layers


def test_mixed_files_are_keyed_by_their_float_nodes():
    a = Candidate("onnxruntime-int8-mixed-1", "onnxruntime", "int8", float_nodes=("c1",))
    b = Candidate("openvino-int8-mixed-1", "openvino", "int8", float_nodes=("c1",))
    c = Candidate("onnxruntime-int8-mixed-2", "onnxruntime", "int8", float_nodes=("c1", "c2"))
    assert a.artifact_key == b.artifact_key != c.artifact_key  # one file per k, run on every backend
    assert a.artifact_key != Candidate("onnxruntime-int8", "onnxruntime", "int8").artifact_key


def test_mixed_ks():
    assert mixed_ks(50, 3) == [1, 2, 3, 4]  # up to the guard's k, and one more as a margin for the judge half
    assert mixed_ks(50, 4) == [1, 2, 3, 4, 6]
    assert mixed_ks(50, None) == [1, 2, 3, 4, 6, 8]  # the guard found none within budget: the whole schedule
    assert mixed_ks(50, 9) == [1, 2, 3, 4, 6, 8, 9]
    assert mixed_ks(3, None) == [1, 2]  # never every layer: all-float is the FP32 candidate
    assert mixed_ks(0, None) == []


def test_split_is_disjoint_and_stratified():
    labels = np.repeat(np.arange(10), 7)
    sel, judge = split_selection_judge(len(labels), labels)
    assert not set(sel) & set(judge) and sorted([*sel, *judge]) == list(range(70))
    assert set(labels[sel]) == set(labels[judge]) == set(range(10))  # every class in both halves
    assert abs(len(sel) - len(judge)) <= 10  # at most one image per class apart
    again = split_selection_judge(len(labels), labels)
    assert (again[0] == sel).all()  # deterministic: the same halves on every run
    s2, j2 = split_selection_judge(9)
    assert len(s2) == 5 and len(j2) == 4 and not set(s2) & set(j2)
    with pytest.raises(EdgekitError, match="needs at least 2 judge images"):
        split_selection_judge(1)


def test_time_budget_stops_steps_that_would_not_fit():
    clock = FakeClock(100.0)
    tb = TimeBudget(10.0, clock)
    assert tb.allows("fp32 round", 5)  # nothing measured yet: no estimate, 0 s spent
    clock.t += 4.0
    tb.finished(4)  # 1 s per candidate so far
    assert tb.allows("mixed", 6)  # 4 s + 6 x 1 s = 10 s: fits exactly
    assert not tb.allows("runtime options", 7)  # 4 + 7 > 10
    clock.t += 5.0
    assert not tb.allows("one more")  # 9 s spent + 9/4 s per candidate > 10
    assert tb.describe() == {"seconds": 10.0, "spent_s": 9.0, "skipped": ["runtime options", "one more"]}
    free = TimeBudget(None, clock)
    clock.t += 1e6
    assert free.allows("anything", 1000) and free.skipped == []
    with pytest.raises(EdgekitError, match=r"--time-budget 0: give a positive number of seconds"):
        TimeBudget(0)


def test_time_budget_needs_optimize(cli, tmp_path):
    code, _, err = cli("export", "mobilenet_v2", "--weights", "random", "--time-budget", "30", "--out", tmp_path / "o")
    assert code == 2 and "--time-budget bounds the --optimize search: add --optimize latency" in err


@pytest.mark.slow  # about 100 s on 2 cores (the longest default test): the pure tests above cover the ranking
def test_optimize_holds_mixed_candidates_on_digits(digits, digits_model, cli, tmp_path):
    """Ranges clipped at the 90th percentile of 4 calibration images ruin full INT8 of the digits MobileNetV2
    (min-max or per-tensor INT8 of this small model loses nothing, measured), so the guard ranks the layers and the
    k-most-sensitive-float files join the search on both backends; each is held to the budget like the rest (here
    every one misses it), the choice is the fastest candidate within budget on the selection half, and its
    judge-half drop is reported beside it. Under --drop-rule one-se: every candidate is held to its drop plus its
    paired standard error, which these INT8 files, with answers changed both ways, have."""
    out = tmp_path / "o"
    code, stdout, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--optimize", "latency",
                            "--drop-rule", "one-se",
                            "--max-drop", "0.3", "--eval-data", digits[1], "--calib-data", digits[0],
                            "--calib-size", "4", "--calib-method", "percentile", "--percentile", "90",
                            "--threads", "2", "--out", out, "--calib-cache", tmp_path / "c.json", *DIGITS_FLAGS)
    assert code == 0, err
    o = json.loads((out / "report.json").read_text())["optimize"]
    # 359 test images, each class dealt alternately: 182 choose, 177 report (1 image = 0.55 / 0.56 points), so a
    # 0.3-point budget means no flipped image on the selection half
    assert (o["selection_images"], o["judge_images"]) == (182, 177)
    cands = {c["name"]: c for c in o["candidates"]}
    full = cands["onnxruntime-int8"]
    assert full["drop"] > 0.3  # the premise: full INT8 from clipped ranges is over budget
    mixed = [c for n, c in cands.items() if "-mixed-" in n and not c["runtime"]]
    backends = {"onnxruntime"} | ({"openvino"} if importlib.util.find_spec("openvino") else set())
    assert o["mixed_precision"]["ks"] and {c["backend"] for c in mixed} == backends  # every k on every backend
    assert len(mixed) == len(o["mixed_precision"]["ks"]) * len(backends)
    for c in mixed:  # k float layers are the k first of the guard's ranking
        k = int(c["name"].split("-mixed-")[1])
        assert c["float_nodes"] == [r["node"] for r in o["mixed_precision"]["ranking"]][:k]
        assert c["judge_drop"] == pytest.approx(o["baseline"]["judge"] - c["judge_metric"])
    assert o["drop_rule"] == "one-se"
    for c in o["candidates"]:
        assert c["budget_drop"] == pytest.approx(c["drop"] + c["drop_uncertainty"]["se"])
    assert any(c["drop_uncertainty"]["se"] > 0.2 for c in o["candidates"])  # the rule had something to hold
    rep = json.loads((out / "report.json").read_text())
    ch = check_latency_choice(rep, 0.3)
    assert f"{ch['judge_drop']:.2f} on the 177 held-out judge images" in " ".join(rep["notes"])


def test_time_budget_exceeded_keeps_fp32_and_says_what_was_skipped(digits, digits_model, cli, tmp_path):
    """A budget already spent by calibration: FP32 is still measured (the answer of last resort), no INT8 file is
    built, and the report and notes name every step that was skipped."""
    out = tmp_path / "o"
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--optimize", "latency",
                       "--max-drop", "1", "--eval-data", digits[1], "--max-images", "60", "--calib-data", digits[0],
                       "--calib-size", "16", "--threads", "2", "--time-budget", "0.001", "--out", out,
                       *DIGITS_FLAGS)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    o = rep["optimize"]
    assert {c["precision"] for c in o["candidates"]} == {"fp32"} and o["choice"]["precision"] == "fp32"
    skipped = o["time_budget"]["skipped"]
    assert "onnxruntime-int8" in skipped and "mixed precision" in skipped and "runtime options" in skipped
    assert o["time_budget"]["spent_s"] > 0.001 and not (out / "candidates").exists()
    assert any(n.startswith("--time-budget 0.001 s: stopped starting candidates") for n in rep["notes"])
