"""The automatic choice: selection as pure functions, and one real `--optimize latency` run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import DIGITS_FLAGS, check_latency_choice

from edgekit.errors import BudgetExceededError, EdgekitError
from edgekit.pipeline.candidates import Candidate, Measured, candidates, choose


def _m(name, ms, size, drop):
    return Measured(Candidate(name, "onnxruntime", "int8"), ms, size, 90.0 - drop, drop)


def test_choose_fastest_within_budget():
    ms = [_m("a", 1.0, 100, 2.0), _m("b", 1.5, 50, 0.4), _m("c", 2.0, 10, 0.0)]
    assert choose(ms, 0.5).candidate.name == "b"  # a is faster but over budget
    assert choose(ms, 5.0).candidate.name == "a"
    assert choose(ms, 0.5, "size").candidate.name == "c"


def test_ties_and_errors():
    tie = [_m("z", 1.0, 100, 0.1), _m("y", 1.0, 80, 0.1), _m("x", 1.0, 80, 0.1)]
    assert choose(tie, 1.0).candidate.name == "x"  # equal latency: smaller file, then the name
    with pytest.raises(BudgetExceededError, match=r"no candidate is within --max-drop 0.1: the closest, b, loses 0.40"):
        choose([_m("a", 1.0, 1, 2.0), _m("b", 1.0, 1, 0.4)], 0.1)
    with pytest.raises(EdgekitError, match="choose latency or size"):
        choose(tie, 1.0, "energy")
    with pytest.raises(EdgekitError, match="no candidate"):
        choose([], 1.0)


def test_runoff_field_takes_the_near_ties_of_the_choice():
    from edgekit.pipeline.runoff import runoff_field

    ms = [_m("a", 1.00, 100, 0.2), _m("b", 1.04, 90, 0.0), _m("c", 1.06, 80, 0.0), _m("d", 0.90, 100, 3.0),
          _m("e", 1.03, 70, 0.4)]
    names = lambda field: [m.candidate.name for m in field]  # noqa: E731
    assert names(runoff_field(ms, 0.5, within=0.05)) == ["a", "e", "b"]  # within 5% of a, in budget (d is over)
    assert names(runoff_field(ms, 0.5)) == ["a", "e", "b", "c"]  # the default: within 25%, fastest first
    assert names(runoff_field(ms, 0.5, within=0.10)) == ["a", "e", "b", "c"]
    assert names(runoff_field(ms, 0.5, within=0.10, k=2)) == ["a", "e"]
    assert names(runoff_field(ms, 0.3, within=0.05)) == ["a", "b"]  # e is over a 0.3 budget
    assert runoff_field(ms, 0.5, within=0.01) == []  # no rival: no runoff
    assert names(runoff_field(ms, 0.1, within=0.05)) == ["b", "c"]  # a is over a 0.1 budget: the ties of b
    assert runoff_field(ms[:1] + ms[3:], 0.3) == [] and runoff_field(ms[3:4], 0.5) == []  # one fits, or none does
    # size: only candidates of the choice's size tie with it; a slower one of the same size still runs
    same = [_m("s1", 2.00, 50, 0.0), _m("s2", 2.05, 50, 0.0), _m("s3", 2.01, 60, 0.0), _m("big", 1.0, 99, 0.0)]
    assert names(runoff_field(same, 0.5, "size", within=0.05)) == ["s1", "s2"]
    assert names(runoff_field(same, 0.5, "size", k=1)) == [] and names(runoff_field(same[:1], 0.5, "size")) == []


def test_the_runoff_chooses_among_its_own_candidates_on_its_head_to_head_figures():
    """Seen on MobileNetV3-Small: the runoff's figures rose on a busy machine, and a candidate timed in the first
    round only (never beside them) became the choice; the runoff decides among the candidates it timed, on the
    head-to-head medians alone (the first round's figure, kept in the report, does not vote)."""
    from edgekit.pipeline.runoff import after_runoff

    a, b, other = _m("a", 0.30, 100, 0.0), _m("b", 0.36, 100, 0.0), _m("other", 0.32, 50, 0.0)
    rounds = {"a": [0.40, 0.41, 0.39, 0.42, 0.40], "b": [0.37, 0.36, 0.50, 0.35, 0.37]}
    out, best, ties = after_runoff([a, b, other], rounds, 0.5)
    assert best.candidate.name == "b" and choose(out, 0.5).candidate.name == "other"
    assert ties == {}  # b is faster in all 5 rounds: a does not tie it
    assert [m.latency_ms for m in out] == [pytest.approx(0.40), pytest.approx(0.37), 0.32]
    assert out[1].extra["first_round_ms"] == 0.36 and out[1].extra["runoff_ms"] == rounds["b"]
    assert out[1].drop == b.drop and "runoff_ms" not in out[2].extra  # accuracy is not measured again


def test_sign_test_is_the_exact_binomial_tail():
    from edgekit.stats import sign_test

    fast = [1.0] * 15
    t = sign_test(fast, [1.1] * 12 + [0.9] * 3)  # faster in 12 of 15 rounds
    assert (t["a_faster"], t["b_faster"], t["n"]) == (12, 3, 15)
    assert t["p"] == pytest.approx((455 + 105 + 15 + 1) / 2 ** 15)  # C(15,12..15) / 2^15 = 0.0176
    assert sign_test(fast, [1.1] * 11 + [0.9] * 4)["p"] == pytest.approx(1941 / 2 ** 15)  # 11 of 15: 0.0592
    assert sign_test(fast, fast)["p"] == 1.0 and sign_test(fast, [1.1] * 15)["ratio"] == pytest.approx(1.1)
    with pytest.raises(ValueError, match="paired timings"):
        sign_test([1.0, 2.0], [1.0])


def test_the_runoff_gives_a_tie_in_speed_to_the_smaller_file():
    """Seen in run 13 on ShuffleNetV2: a pruned FP32 file and a pruned INT8 file 0.3x its size ran off, and the
    FP32 file shipped on the median of a noisy head-to-head. A candidate the rounds cannot tell from the fastest
    (sign test at 5%, median round ratio within 5%) ties it, and of tied files the smaller ships."""
    from edgekit.pipeline.runoff import after_runoff

    big, small, over = _m("fp32", 0.5, 2_000_000, 0.0), _m("int8", 0.5, 600_000, 0.2), _m("tiny", 0.5, 100, 0.9)
    fast = [1.00, 1.02, 0.98, 1.01, 0.99, 1.00, 1.03, 0.97, 1.00, 1.02, 0.99, 1.01, 1.00, 0.98, 1.02]
    # the smaller file slower in 9 rounds of 15, by about 1%: a tie (p = 0.30)
    noisy = [f * (1.01 if i % 5 < 3 else 0.995) for i, f in enumerate(fast)]
    out, best, ties = after_runoff([big, small], {"fp32": fast, "int8": noisy}, 0.5)
    assert best.candidate.name == "int8" and set(ties) == {"int8"}
    assert ties["int8"]["b_faster"] == 6 and ties["int8"]["p"] == pytest.approx(0.304, abs=1e-3)
    # slower in 13 rounds of 15, by 1%: the test tells them apart, the fastest ships
    worse = [f * (1.01 if i < 13 else 0.995) for i, f in enumerate(fast)]
    assert after_runoff([big, small], {"fp32": fast, "int8": worse}, 0.5)[1].candidate.name == "fp32"
    # slower by 8% in the median round, though in only 9 rounds (wild spells in the others): too slow to be a tie
    spiky = [f * (1.08 if i % 5 < 3 else 0.5) for i, f in enumerate(fast)]
    out, best, ties = after_runoff([big, small], {"fp32": fast, "int8": spiky}, 0.5)
    assert best.candidate.name == "fp32" and ties == {}
    # a tie over the budget never ships; the size objective is left as it was
    assert after_runoff([big, over], {"fp32": fast, "tiny": noisy}, 0.5)[1].candidate.name == "fp32"
    _, best, ties = after_runoff([big, small], {"fp32": fast, "int8": noisy}, 0.5, "size")
    assert best.candidate.name == "int8" and ties == {}
    # the report says so
    from edgekit.pipeline.runoff import runoff_notes

    _, best, ties = after_runoff([big, small], {"fp32": fast, "int8": noisy}, 0.5)
    runoff = {"candidates": ["fp32", "int8"], "within": 0.25, "rounds": 15, "choice_before": "int8",
              "fastest": "fp32", "speed_ties": ties, "choice_after": "int8"}
    assert runoff_notes(runoff, best, big) == [
        "runoff: fp32, int8 (within 25% of the choice) timed again head-to-head, 15 rounds; fp32 is fastest, not int8 "
        "as the first rounds had it",
        "runoff: int8 ties it in speed (1.010x round by round, faster in 6 of 15 rounds, sign test p = 0.30) and is "
        "smaller (0.600 MB against 2.000 MB): chose it"]


def test_head_to_head_times_every_runner_in_every_round_in_a_new_order():
    import time

    from edgekit.measure.timing import head_to_head, sweep_order

    calls: list[str] = []

    class Sleeper:
        def __init__(self, name, s):
            self.name, self.s = name, s

        def infer(self, x):
            calls.append(self.name)
            time.sleep(self.s)

    out = head_to_head({"fast": Sleeper("fast", 0.001), "slow": Sleeper("slow", 0.004), "mid": Sleeper("mid", 0.002)},
                       np.zeros((1, 3)), rounds=4, warmup=1, repeats=3, pause_s=0.0)
    assert {k: len(v) for k, v in out.items()} == {"fast": 4, "slow": 4, "mid": 4}
    assert all(s > m > f for f, s, m in zip(out["fast"], out["slow"], out["mid"]))  # each block timed its own calls
    assert 1.0 <= min(out["fast"]) and max(out["slow"]) < 40.0
    blocks = [calls[i] for i in range(0, len(calls), 4)]  # warmup 1 + 3 timed calls per block
    names = ["fast", "slow", "mid"]
    assert blocks == [names[i] for r in range(4) for i in sweep_order(3, r)]


def test_candidate_sets():
    from edgekit.models.registry import get_card

    names = [c.name for c in candidates(get_card("squeezenet1_1").capabilities, ["onnxruntime"])]
    assert names == ["onnxruntime-fp32", "onnxruntime-int8", "onnxruntime-int8-s8", "onnxruntime-int8-no-depthwise"]
    mb = [c.name for c in candidates(get_card("mobilenet_v3_small").capabilities, ["onnxruntime", "openvino"],
                                     nncf=True)]
    assert "onnxruntime-int8-no-act-se" in mb and "openvino-fp32" in mb and mb[-1] == "openvino-int8-nncf"
    # the card decides: SE or SiLU/hard-swish blocks get the float try, MobileNetV2 (ReLU6, no SE) does not;
    # a model without a card (an ONNX file) gets every candidate
    assert "onnxruntime-int8-no-act-se" in [c.name for c in candidates(get_card("efficientnet_b0").capabilities,
                                                                       ["onnxruntime"])]
    assert "onnxruntime-int8-no-act-se" not in [c.name for c in candidates(get_card("mobilenet_v2").capabilities,
                                                                           ["onnxruntime"])]
    assert "onnxruntime-int8-no-act-se" in [c.name for c in candidates(None, ["onnxruntime"])]


@pytest.mark.slow  # 48-78 s on 2 cores: it keeps the default tier under 15 minutes (.ci/run runs both tiers)
def test_optimize_latency_end_to_end(digits, digits_model, cli, tmp_path):
    rule = "point"  # the default, named; the slow mixed-precision search runs under one-se
    out = tmp_path / "o"
    code, stdout, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--optimize", "latency",
                            "--max-drop", "1", "--eval-data", digits[1], "--max-images", "120", "--calib-data",
                            digits[0], "--calib-size", "64", "--threads", "2", "--out", out,
                            "--calib-cache", tmp_path / "c.json", "--drop-rule", rule, *DIGITS_FLAGS)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    o = rep["optimize"]
    cands = o["candidates"]
    assert {c["name"] for c in cands} >= {"onnxruntime-fp32", "onnxruntime-int8"}
    ran_off = set(o["runoff"].get("candidates", []))
    assert all(c["latency_ms"] > 0 and len(c["sweeps_ms"]) == 3 for c in cands)
    for c in cands:  # a runoff candidate's latency is the median of its head-to-head blocks, any other's of its sweeps
        timed = c["runoff_ms"] if c["name"] in ran_off else c["sweeps_ms"]
        assert len(timed) == (o["runoff"]["rounds"] if c["name"] in ran_off else 3)
        assert c["latency_ms"] == pytest.approx(float(np.median(timed)))
    for c in cands:  # the drop the choice uses, counted image by image against FP32 on the selection half
        sure = c["drop_uncertainty"]
        assert sure["n"] == o["selection_images"] and sure["drop"] == pytest.approx(c["drop"])
        assert sure["low"] <= c["drop"] <= sure["high"] and (sure["se"] > 0) == (sure["broken"] + sure["fixed"] > 0)
        # the drop the budget holds: the drop itself, or under one-se the drop plus its standard error
        assert c["budget_drop"] == pytest.approx(c["drop"] + (sure["se"] if rule == "one-se" else 0.0))
    assert o["drop_rule"] == rule
    ch = check_latency_choice(rep, 1.0)
    assert (out / ch["file"]).exists() and f"candidate {ch['name']}" in stdout
    unsure = [n for n in rep["notes"] if "is not ruled out" in n]  # said exactly when the interval passes the budget
    assert bool(unsure) == (ch["drop_uncertainty"]["high"] > 1.0)
    assert not o["runoff"] or (o["runoff"]["choice_after"] == ch["name"] and ch["name"] in ran_off)
    assert "QLinearConv" in o["int8_profile_ms"] and all(v > 0 for v in o["int8_profile_ms"].values())
    # the float tries follow the recorded INT8 profile (its op shares are timings, so which ops it names varies
    # with the machine's load: QLinearAdd measured 2% and 17% of MobileNetV2's time in two runs here)
    import onnx

    from edgekit.pipeline.candidates import profiled_exclusions
    from edgekit.pipeline.optimize import PROFILED_STEPS

    ops = {n.op_type for n in onnx.load(out / "model.onnx").graph.node}
    assert [step["float"] for step in o["profiled_search"]] == \
        profiled_exclusions(o["int8_profile_ms"], ops)[:PROFILED_STEPS]
    for step in o["profiled_search"]:  # an op type stays float only when the whole model measured 3% faster
        assert step["kept"] == (step["ms"] < 0.97 * step["against_ms"] and step["budget_drop"] <= 1.0)
        assert (step["budget_drop"] > step["drop"]) <= (rule == "one-se")
    tuned = [c for c in cands if c["runtime"]]
    assert tuned and all("+" in c["name"] for c in tuned)  # the runtime round ran on the fastest artifacts
    runtime = json.loads((out / "model_best.runtime.json").read_text())
    assert runtime["backend"] == ch["backend"] and runtime["options"] == ch["runtime"]
    if ch["file"].endswith(".onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out / ch["file"]))
        assert sess.run(None, {"input": np.zeros((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_openvino_runner_agrees_with_onnxruntime(digits, digits_model, digits_pre, tmp_path):
    pytest.importorskip("openvino", reason="install edgekit[openvino] for the OpenVINO backend")
    from edgekit.api import ExportRequest
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.backends.openvino import OpenVINORunner
    from edgekit.data.images import load_array, scan
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model
    from edgekit.stats import agreement

    export_model(ExportRequest("mobilenet_v2", tmp_path / "m", str(digits_model[0]),
                               preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3)))
    x, _ = load_array(scan(digits[1], num_classes=10).subset(range(40)), digits_pre)
    with OnnxRuntimeRunner(tmp_path / "m" / "model.onnx") as r:
        ref = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
    with OpenVINORunner(tmp_path / "m" / "model.onnx", threads=1) as r:
        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
    ag = agreement(got, ref)
    assert ag["top1_agreement"] == 100.0 and ag["max_abs_diff"] < 1e-3


def test_profiled_exclusions_follow_the_int8_profile():
    from edgekit.pipeline.candidates import profiled_exclusions

    # EfficientNet-B0 INT8 under onnxruntime, ms per op type (measured): the SiLU/SE kernels dominate
    prof = {"QLinearConv": 3.35, "QLinearMul": 2.18, "QLinearSigmoid": 1.53, "ReduceMean": 1.14,
            "DequantizeLinear": 0.55, "QuantizeLinear": 0.17, "QLinearAdd": 0.12, "QGemm": 0.07, "Reshape": 0.01}
    ops = {"Conv", "Mul", "Sigmoid", "ReduceMean", "Add", "Gemm", "Reshape", "Flatten"}
    assert profiled_exclusions(prof, ops) == ["Mul", "Sigmoid", "ReduceMean"]  # Add is 1.3%: not worth a try
    assert profiled_exclusions(prof, ops, min_share=0.01) == ["Mul", "Sigmoid", "ReduceMean", "Add"]
    assert profiled_exclusions(prof, ops - {"Sigmoid"}) == ["Mul", "ReduceMean"]  # only the model's own ops
    assert profiled_exclusions({}, ops) == [] and profiled_exclusions({"QLinearConv": 1.0}, ops) == []


def test_runtime_variants_and_tuning_seeds():
    from edgekit.pipeline.candidates import runtime_variants, tuning_seeds

    ort = Candidate("onnxruntime-int8", "onnxruntime", "int8")
    names = [v.name for v in runtime_variants(ort)]
    assert names == ["onnxruntime-int8+denormals-zero", "onnxruntime-int8+no-spin", "onnxruntime-int8+extended-graph"]
    assert all(v.artifact_key == ort.artifact_key and v.runtime for v in runtime_variants(ort))
    ov = runtime_variants(Candidate("openvino-fp32", "openvino", "fp32"))
    assert dict(ov[0].runtime) == {"ENABLE_CPU_PINNING": True}
    ms = [Measured(Candidate("a", "onnxruntime", "int8"), 1.0, 1, 90, 2.0, "int8.onnx"),  # over budget
          Measured(Candidate("b", "onnxruntime", "int8"), 1.5, 1, 90, 0.2, "int8-s8.onnx"),
          Measured(Candidate("c", "openvino", "int8"), 1.6, 1, 90, 0.2, "int8-s8.onnx"),
          Measured(Candidate("d", "onnxruntime", "int8", exclude=("se",)), 1.7, 1, 90, 0.2, "int8-s8.onnx"),
          Measured(Candidate("e", "onnxruntime", "fp32"), 2.0, 1, 90, 0.0, "model.onnx")]
    # d is b's file on b's backend: tuning it twice would measure the same thing
    assert [m.candidate.name for m in tuning_seeds(ms, 0.5)] == ["b", "c"]
    assert [m.candidate.name for m in tuning_seeds(ms, 0.5, k=3)] == ["b", "c", "e"]
    assert [m.candidate.name for m in tuning_seeds(ms, 0.1)] == ["e"] and tuning_seeds(ms[:4], 0.1) == []


def test_runtime_options_are_checked(tmp_path):
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner, session_from_onnx
    from edgekit.pipeline.optimize import read_runtime

    with pytest.raises(EdgekitError, match="unknown onnxruntime option 'spin'"):
        OnnxRuntimeRunner.tuned("m.onnx", 1, {"spin": False})
    with pytest.raises(EdgekitError, match="unknown graph optimization level 'max'"):
        session_from_onnx("m.onnx", optimization="max")
    side = tmp_path / "model_best.runtime.json"
    side.write_text(json.dumps({"backend": "onnxruntime", "options": {"denormal_as_zero": True}}))
    assert read_runtime(tmp_path / "model_best.onnx", "onnxruntime") == {"denormal_as_zero": True}
    assert read_runtime(tmp_path / "model_best.onnx", "openvino") == {}
    assert read_runtime(tmp_path / "other.onnx", "onnxruntime") == {}
    side.write_text("{not json")
    with pytest.raises(EdgekitError, match="model_best.runtime.json is unreadable"):
        read_runtime(tmp_path / "model_best.onnx", "onnxruntime")


def test_op_times_see_the_quantized_kernels(digits, digits_model, digits_pre, tmp_path):
    from edgekit.api import ExportRequest, QuantizeOptions
    from edgekit.backends.onnxruntime import op_times
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model

    export_model(ExportRequest("mobilenet_v2", tmp_path / "m", str(digits_model[0]),
                               preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3),
                               quantize=QuantizeOptions("int8")))
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    fp32, int8 = op_times(tmp_path / "m" / "model.onnx", x, 1), op_times(tmp_path / "m" / "model_int8.onnx", x, 1)
    assert "Conv" in fp32 and not any(k.startswith("QLinear") for k in fp32)
    assert "QLinearConv" in int8 and all(v > 0 for v in int8.values())
    assert list(int8.values()) == sorted(int8.values(), reverse=True)


def test_openvino_specializes_dynamic_batch_and_checks_options(digits, digits_model, digits_pre, tmp_path):
    pytest.importorskip("openvino", reason="install edgekit[openvino] for the OpenVINO backend")
    from edgekit.api import ExportRequest, GraphOptions
    from edgekit.backends.onnxruntime import OnnxRuntimeRunner
    from edgekit.backends.openvino import OpenVINORunner
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model

    with pytest.raises(EdgekitError, match="unknown OpenVINO option 'PINNING'"):
        OpenVINORunner("m.onnx", options={"PINNING": True})
    export_model(ExportRequest("mobilenet_v2", tmp_path / "m", str(digits_model[0]),
                               preprocess=PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3),
                               export=GraphOptions(dynamic_batch=True)))
    x = np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32)
    with OnnxRuntimeRunner(tmp_path / "m" / "model.onnx") as r:
        ref = r.infer(x)
    with OpenVINORunner(tmp_path / "m" / "model.onnx", 1, options={"ENABLE_CPU_PINNING": True}) as r:
        got1, got5 = np.concatenate([r.infer(x[i:i + 1]) for i in range(5)]), r.infer(x)
        assert sorted(r._requests) == [(1, 3, 32, 32), (5, 3, 32, 32)]  # one static compile per shape
        assert r.describe()["shape_specialized"] is True
    assert np.abs(got1 - ref).max() < 1e-3 and np.abs(got5 - ref).max() < 1e-3


def test_the_uncertainty_note_gives_the_interval_and_the_fix():
    from edgekit.pipeline.candidates import uncertainty_note
    from edgekit.stats import paired_drop

    ref = np.ones(505, bool)
    ref[:15] = False
    cand = ref.copy()
    cand[:15] = True
    cand[15:31] = False  # 16 lost, 15 gained: a 0.20 drop that fits 0.5 only as a point estimate
    note = uncertainty_note(paired_drop(cand, ref), 0.5)
    assert note.startswith("the choice's drop, 0.20 points on 505 selection images (16 answers lost, 15 gained)")
    assert "-1.96 to 2.36 at 95%" in note and "--max-drop 0.5" in note and "--eval-data" in note
    # se 1.102, drop 0.198: 505 * (1.96 * 1.102 / 0.302)^2 = 25859 selection images, twice that in --eval-data
    assert "(about 51718 in all would settle it, at these rates)" in note


def test_images_to_settle_scales_the_standard_error_as_one_over_root_n():
    from edgekit.stats import images_to_settle, paired_drop

    ref = np.ones(1000, bool)
    cand = ref.copy()
    cand[:10] = False  # 10 lost, none gained: a 1.00 drop, se 0.31
    sure = paired_drop(cand, ref)
    need = images_to_settle(sure, 1.5)
    assert need == int(np.ceil(1000 * (1.96 * sure["se"] / 0.5) ** 2))
    shrunk = sure["se"] * np.sqrt(1000 / need)  # at that many images, the interval ends at the budget
    assert abs(sure["drop"] + 1.96 * shrunk - 1.5) < 1e-3
    assert images_to_settle(sure, 2.0) is None  # 1.00 + 1.96 * 0.31 = 1.62 is already under 2
    assert images_to_settle(sure, 1.0) is None and images_to_settle(sure, 0.5) is None  # the drop is not under it


def test_a_choice_over_budget_on_the_held_out_half_is_not_shipped():
    """Run 9's SqueezeNet: the fastest INT8 file fitted a 0.5 budget on the selection half (-0.59) and lost 1.82 on
    the 495 held-out images. It is not shipped: the fastest candidate within the budget on both halves is, and the
    note says so. A choice that holds on both halves ships untouched."""
    from edgekit.pipeline.candidates import held_out_veto

    def m(name, ms, sel, judge, precision="int8"):
        return Measured(Candidate(name, "onnxruntime", precision), ms, 1, 90 - sel, sel, f"{name}.onnx",
                        {"judge_drop": judge})

    lucky, steady, fp32 = m("lucky", 1.0, -0.59, 1.82), m("steady", 1.3, 0.2, 0.4), m("fp32", 2.0, 0.0, 0.0, "fp32")
    shipped, veto = held_out_veto(lucky, [lucky, steady, fp32], 0.5, "latency", 495)
    assert shipped is steady and veto["candidate"] == "lucky" and veto["judge_drop"] == 1.82
    assert veto["note"].startswith("lucky fitted --max-drop 0.5 on the selection half (drop -0.59) but lost 1.82 "
                                   "points on the 495 held-out judge images: not shipped. Shipped steady instead")
    assert held_out_veto(steady, [lucky, steady, fp32], 0.5, "latency", 495) == (steady, None)
    only_fp32, _ = held_out_veto(lucky, [lucky, m("steady", 1.3, 0.2, 0.9), fp32], 0.5, "latency", 495)
    assert only_fp32 is fp32  # FP32 holds on both halves when nothing else does


def test_one_se_rule_holds_each_candidate_to_its_drop_plus_one_standard_error():
    """A fast candidate whose 0.3-point drop is made of many answers changed both ways (SE 0.4) fits a 0.5 budget as
    a point estimate only; under one-se the slower candidate with few changed answers is chosen, in every place the
    search checks the budget (the choice, the runoff's field, the runtime round's seeds)."""
    from edgekit.pipeline.candidates import drop_margin, tuning_seeds
    from edgekit.pipeline.runoff import runoff_field
    from edgekit.stats import paired_drop

    ref = np.ones(500, bool)
    churny = ref.copy()
    churny[:40] = False  # 40 answers lost ...
    ref_c = ref.copy()
    ref_c[40:79] = False  # ... 39 gained against FP32's own mistakes ...
    churny[40:79] = True
    steady = ref_c.copy()
    steady[:1] = False  # ... against 1 lost, 0 gained
    u_churny, u_steady = paired_drop(churny, ref_c), paired_drop(steady, ref_c)
    assert u_churny["drop"] == pytest.approx(0.2) and u_steady["drop"] == pytest.approx(0.2)
    assert u_churny["se"] > 0.3 > u_steady["se"] > 0.1

    def cands(rule):
        return [Measured(Candidate("fast", "onnxruntime", "int8"), 1.0, 1, 90, u_churny["drop"], "a.onnx",
                         {"drop_uncertainty": u_churny}, drop_margin(rule, u_churny)),
                Measured(Candidate("slow", "onnxruntime", "int8", exclude=("se",)), 1.02, 1, 90, u_steady["drop"],
                         "b.onnx", {"drop_uncertainty": u_steady}, drop_margin(rule, u_steady)),
                Measured(Candidate("fp32", "onnxruntime", "fp32"), 2.0, 1, 90, 0.0, "m.onnx",
                         {"drop_uncertainty": paired_drop(ref_c, ref_c)}, drop_margin(rule, paired_drop(ref_c, ref_c)))]

    point, safe = cands("point"), cands("one-se")
    assert choose(point, 0.5).candidate.name == "fast"
    assert choose(safe, 0.5).candidate.name == "slow"
    assert [m.candidate.name for m in runoff_field(point, 0.5)] == ["fast", "slow"]
    assert runoff_field(safe, 0.5) == []  # the fast one is out of the budget, so no near-tie is left
    assert [m.candidate.name for m in tuning_seeds(safe, 0.5, k=3)] == ["slow", "fp32"]
    assert safe[0].to_dict()["budget_drop"] == pytest.approx(0.2 + u_churny["se"])
    assert point[0].to_dict()["budget_drop"] == pytest.approx(0.2)
    with pytest.raises(BudgetExceededError, match=r"loses 0\.20 points \(plus one standard error, 0\.\d\d, under "
                                                  r"--drop-rule one-se\)"):
        choose(safe[:2], 0.25)
    with pytest.raises(EdgekitError, match="--drop-rule 'two-se': choose point or one-se"):
        drop_margin("two-se", u_churny)


def test_drop_rule_needs_optimize_and_a_known_rule(cli, tmp_path):
    code, _, err = cli("export", "squeezenet1_1", "--int8", "--drop-rule", "one-se", "--out", tmp_path / "o")
    assert code == 2 and "--drop-rule one-se is how --optimize holds candidates to --max-drop: add --optimize" in err
    code, _, err = cli("export", "squeezenet1_1", "--optimize", "latency", "--drop-rule", "two-se",
                       "--out", tmp_path / "o")
    assert code == 2 and "--drop-rule two-se: choose point or one-se" in err
    assert not (tmp_path / "o").exists()
