"""Recipes (schema, dry runs, reproduction), the CI gate's verdicts and exit codes, and the Pareto chart."""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from pathlib import Path

import pytest
from helpers import DIGITS_FLAGS

from edgekit.errors import EdgekitError
from edgekit.recipe import run as rr
from edgekit.recipe import spec as rc

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_recipes_shipped_for_every_family_and_target():
    names = {p.stem for p in RECIPES}
    for fam in ("squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0",
                "efficientnet_b0"):
        assert {f"{fam}-cpu", f"{fam}-jetson-orin"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_validates_and_dry_runs(path):
    r = rc.load(path)
    problems = rr.dry_run(r)
    if r.backend.name == "tensorrt":  # the host's part ends with the bundle; TensorRT is the board's
        assert r.quantize.target == "tensorrt" and r.quantize.precision == "int8"
        assert rr.steps(r)[-3:-1] == ["Jetson bundle (here)", "on the board: edgekit build BUNDLE (engine, "
                                                               "profile, latency budget)"]
    assert problems == []
    assert rc.load(path, ["quantize.precision=fp16"]).quantize.precision == "fp16"
    assert rr.steps(r)[-1] == "check budgets"


@pytest.mark.parametrize("text,match", [
    ("model: mobilenet_v2\nquantize:\n  precison: int8\n",
     r"r\.yaml:3: quantize\.precison: unknown key \(did you mean precision\?\)"),
    ("model: mobilenet_v2\nexport:\n  opset: eighteen\n", r"r\.yaml:3: export\.opset: expected int, got 'eighteen'"),
    ("model: mobilenet_v2\nbudgets:\n  max_size_mb: -1\n", r"r\.yaml:3: budgets: max_size_mb must not be negative"),
    ("model: mobilenet_v2\nquantize:\n  precision: int4\n", r"r\.yaml:3: quantize: precision must be one of"),
    ("model: mobilnet\n", r"r\.yaml:1: .*unknown model 'mobilnet'"),
    ("model: [1, 2\n", r"r\.yaml:\d+: not valid YAML"),
    ("modle: mobilenet_v2\n", r"r\.yaml:1: modle: unknown key \(did you mean model\?\)"),
    ("model: mobilenet_v2\nprune:\n  ratio: 1.5\n", r"r\.yaml:3: prune: --ratio 1.5 must lie strictly"),
    ("model: mobilenet_v2\nbackend:\n  name: tensorrt\n  device: cpu\n", r"backend tensorrt runs on cuda"),
])
def test_recipe_errors_name_file_line_and_key(tmp_path, text, match):
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(EdgekitError, match=match):
        rc.load(tmp_path / "r.yaml")


def test_bad_set_override(tmp_path):
    (tmp_path / "r.yaml").write_text("model: mobilenet_v2\n")
    with pytest.raises(EdgekitError, match="use key=value"):
        rc.load(tmp_path / "r.yaml", ["quantize.precision"])
    with pytest.raises(EdgekitError, match=r"\(with --set\):\d+: quantize\.calib_size: expected int"):
        rc.load(tmp_path / "r.yaml", ["quantize.calib_size=many"])


@pytest.mark.slow  # a whole CLI run or two; the default suite stays under 15 minutes
def test_save_recipe_then_run_gives_the_same_artifact(digits, digits_model, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default calibration cache lives in ./calibration/cache
    code, _, err = cli("export", "mobilenet_v2", "--weights", digits_model[0], "--int8", "--calib-data", digits[0],
                       "--calib-size", "100", "--eval-data", digits[1], "--max-images", "60", "--out", "first",
                       "--save-recipe", "again.yaml", *DIGITS_FLAGS)
    assert code == 0, err
    saved = rc.load("again.yaml")
    assert saved.quantize.precision == "int8" and saved.preprocess.input_size == 32
    code, out, err = cli("run", "again.yaml", "--out", "second")
    assert code == 0, err
    for f in ("model.onnx", "model_int8.onnx"):
        a = hashlib.sha256((tmp_path / "first" / f).read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / "second" / "export" / f).read_bytes()).hexdigest()
        assert a == b, f
    assert rc.load(tmp_path / "second" / "recipe.yaml") == saved


@pytest.mark.slow  # 31 s, two prune runs; the default tier keeps the export recipe test above
def test_prune_save_recipe_reproduces_the_pruned_model(digits_model, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("prune", "mobilenet_v2", "--weights", digits_model[0], "--ratio", "0.3", "--sparsity", "2:4",
                       "--out", "first", "--save-recipe", "p.yaml", *DIGITS_FLAGS)
    assert code == 0, err
    saved = rc.load("p.yaml")
    assert saved.prune.ratio == 0.3 and saved.prune.sparsity == "2:4" and saved.finetune is None
    code, _, err = cli("run", "p.yaml", "--out", "second")
    assert code == 0, err
    for f in ("model.onnx", "plan.json", "pruned_state_dict.pt"):
        if f == "plan.json":  # the plan also records where the base weights came from; compare the cut
            a, b = (json.loads((tmp_path / d / f).read_text()) for d in ("first", "second/prune"))
            assert a["layers"] == b["layers"] and a["pruned_weights_sha256"] == b["pruned_weights_sha256"]
            continue
        a = hashlib.sha256((tmp_path / "first" / f).read_bytes()).hexdigest()
        assert a == hashlib.sha256((tmp_path / "second" / "prune" / f).read_bytes()).hexdigest(), f


def test_profile_save_recipe(profiled, cli, tmp_path, monkeypatch):
    path, rep = profiled
    onnx_file = path.parent.parent / "m" / "model.onnx"
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("profile", onnx_file, "--threads", "1", "--repeats", "5", "--warmup", "1", "--out", "p1",
                       "--save-recipe", "prof.yaml")
    assert code == 0, err
    saved = rc.load("prof.yaml")
    assert saved.profile.repeats == 5 and saved.backend.threads == 1 and saved.model == str(onnx_file)
    code, _, err = cli("run", "prof.yaml", "--out", "again")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "profile" / "report.json").read_text())
    first = json.loads((tmp_path / "p1" / "report.json").read_text())
    assert again["artifact"]["params"] == first["artifact"]["params"] and again["latency"]["batch1"]["n"] == 5
    assert again["backend"]["threads"] == first["backend"]["threads"] == 1


# --- the CI gate ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def profiled(digits, digits_model, tmp_path_factory):
    from edgekit.api import ExportRequest, ProfileRequest
    from edgekit.measure.timing import TimingOptions
    from edgekit.models.source import PreprocessOverrides
    from edgekit.pipeline.export import export_model
    from edgekit.pipeline.profile import profile_model

    tmp = tmp_path_factory.mktemp("gate")
    ov = PreprocessOverrides(32, 32, None, (0.5,) * 3, (0.5,) * 3)
    export_model(ExportRequest("mobilenet_v2", tmp / "m", str(digits_model[0]), preprocess=ov))
    rep = profile_model(ProfileRequest(str(tmp / "m" / "model.onnx"), str(tmp / "p"), eval_data=str(digits[1]),
                                       timing=TimingOptions(2, 10), threads=1, max_images=100))
    return tmp / "p" / "report.json", rep


def _variant(tmp_path, rep, name, **changes):
    r = copy.deepcopy(rep)
    if "size" in changes:
        r["artifact"]["size_mb"] *= changes["size"]
    if "latency" in changes:
        r["latency"]["batch1"]["median_ms"] *= changes["latency"]
    if "acc" in changes:
        r["accuracy"]["onnxruntime"]["top1"] += changes["acc"]
    if "cpu" in changes:
        r["environment"]["cpu"] = changes["cpu"]
    from edgekit.report.schema import Headline

    r["headline"] = Headline.of(r).to_dict()  # as the job that measured these figures would have written it
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(r))
    return p


def test_check_budgets(profiled, cli, tmp_path, monkeypatch):
    path, rep = profiled
    size, lat = rep["artifact"]["size_mb"], rep["latency"]["batch1"]["median_ms"]
    acc = rep["accuracy"]["onnxruntime"]["top1"]
    (tmp_path / "ok.yaml").write_text(f"max_size_mb: {size * 1.1}\nmax_latency_ms: {lat * 2}\n"
                                      f"min_accuracy: {acc - 1}\n")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, err = cli("check", path, "--budget", tmp_path / "ok.yaml", "--junit", tmp_path / "j.xml")
    assert code == 0, err
    assert "pass" in out and summary.read_text().startswith("### edgekit check report.json: pass")
    assert 'tests="3" failures="0"' in (tmp_path / "j.xml").read_text()
    (tmp_path / "small.yaml").write_text(f"max_size_mb: {size * 0.9}\n")
    code, out, err = cli("check", path, "--budget", tmp_path / "small.yaml", "--junit", tmp_path / "j.xml")
    assert code == 1 and "FAIL" in out and "regression" in err and "size MB" in err
    assert 'failures="1"' in (tmp_path / "j.xml").read_text() and "REGRESSION" in summary.read_text()
    (tmp_path / "drop.yaml").write_text("max_accuracy_drop: 0.5\n")  # a profile report has no INT8 drop
    code, out, err = cli("check", path, "--budget", tmp_path / "drop.yaml")  # missing data is bad input, not 1
    assert code == 2 and "cannot check max_accuracy_drop 0.5:" in err and "has no top-1 drop" in err
    (tmp_path / "typo.yaml").write_text("max_size: 3\n")
    code, _, err = cli("check", path, "--budget", tmp_path / "typo.yaml")
    assert code == 2 and "typo.yaml:1: max_size: unknown key (did you mean max_size_mb?)" in err


@pytest.mark.parametrize("change,flag,metric", [
    ({"size": 1.05}, ("--max-size-growth", "2%"), "size MB vs baseline"),
    ({"latency": 1.3}, ("--max-latency-growth", "10%"), "latency ms vs baseline"),
    ({"acc": -2.0}, ("--max-accuracy-drop", "0.5"), "top-1 % vs baseline"),
])
def test_check_against_baseline(profiled, cli, tmp_path, change, flag, metric):
    path, rep = profiled
    worse = _variant(tmp_path, rep, "worse", **change)
    code, out, err = cli("check", worse, "--baseline", path, *flag)
    assert code == 1 and metric in err
    same = _variant(tmp_path, rep, "same")
    code, out, err = cli("check", same, "--baseline", path, *flag)
    assert code == 0, err


def test_check_skips_latency_from_other_machines_and_refuses_bad_input(profiled, cli, tmp_path):
    """On a shared CI runner the CPU changes from run to run: latency from another machine is a skipped row with a
    note naming both machines, not a failure (exit 0 when the rest passes); --allow-device-mismatch compares it."""
    path, rep = profiled
    other = _variant(tmp_path, rep, "other", cpu="Some Other CPU", latency=3.0)
    code, out, err = cli("check", other, "--baseline", path, "--max-latency-growth", "10%", "--max-size-growth", "2%",
                         "--junit", tmp_path / "gate.xml")
    assert code == 0, err
    assert "skipped" in out and "note: latency not compared: measured on another machine" in out
    assert "Some Other CPU" in out and "--allow-device-mismatch" in out
    assert "<skipped/>" in (tmp_path / "gate.xml").read_text() and 'failures="0"' in (tmp_path / "gate.xml").read_text()
    code, _, err = cli("check", other, "--baseline", path, "--max-latency-growth", "10%", "--allow-device-mismatch")
    assert code == 1 and "latency ms vs baseline" in err  # 3x slower, compared knowingly
    other = _variant(tmp_path, rep, "other", cpu="Some Other CPU")
    code, _, err = cli("check", other, "--baseline", path, "--max-latency-growth", "10%", "--allow-device-mismatch")
    assert code == 0, err
    code, _, err = cli("check", other, "--baseline", path, "--max-size-growth", "2%")  # size is machine-free
    assert code == 0, err
    (tmp_path / "bad.json").write_text("{oops")
    code, _, err = cli("check", tmp_path / "bad.json", "--baseline", path, "--max-size-growth", "2%")
    assert code == 2 and "bad.json is not valid JSON" in err
    (tmp_path / "alien.json").write_text("{}")
    code, _, err = cli("check", tmp_path / "alien.json", "--baseline", path, "--max-size-growth", "2%")
    assert code == 2 and "not an edgekit report" in err
    code, _, err = cli("check", path)
    assert code == 2 and "no limit to check" in err
    code, _, err = cli("check", path, "--max-size-growth", "2%")
    assert code == 2 and "add --baseline" in err
    code, _, err = cli("check", path, "--baseline", path, "--max-size-growth", "lots")
    assert code == 2 and "give a percentage" in err


def test_compare_plot(profiled, cli, tmp_path):
    from edgekit.report.compare import pareto_front

    path, rep = profiled
    fast = _variant(tmp_path, rep, "fast", latency=0.5, acc=-1.0, size=0.3)
    slow_bad = _variant(tmp_path, rep, "slow_bad", latency=2.0, acc=-5.0, size=2.0)
    code, out, err = cli("compare", path, fast, slow_bad, "--plot", tmp_path / "pareto.png", "--json",
                         tmp_path / "rows.json")
    assert code == 0, err
    png = (tmp_path / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    assert (w, h) == (960, 660) and 20_000 < len(png) < 2_000_000
    rows = {r["variant"]: r for r in json.loads((tmp_path / "rows.json").read_text())}
    assert rows["fast"]["latency_ms"] == pytest.approx(rep["latency"]["batch1"]["median_ms"] * 0.5)
    assert rows["p"]["accuracy"] == pytest.approx(rep["accuracy"]["onnxruntime"]["top1"])
    assert rows["fast"]["pareto"] and rows["p"]["pareto"] and not rows["slow_bad"]["pareto"]
    assert pareto_front([(1, 90), (2, 95), (3, 94), (0.5, 80)]) == [3, 0, 1]
    # a report without a size (a torch model profiled in memory) says n/a, in the table and on the chart, never 0
    unsized = json.loads(Path(fast).read_text())
    unsized["headline"]["size_mb"] = None
    (tmp_path / "unsized.json").write_text(json.dumps(unsized))
    code, out, err = cli("compare", path, tmp_path / "unsized.json", "--plot", tmp_path / "p2.png", "--json",
                         tmp_path / "rows2.json")
    assert code == 0, err
    row = next(r for r in json.loads((tmp_path / "rows2.json").read_text()) if r["variant"] == "unsized")
    assert row["size_mb"] is None and "n/a" in out.split("unsized")[1].splitlines()[0]
    from edgekit.report.compare import marker_label

    assert marker_label(row) == "unsized\nsize n/a" and marker_label({**row, "size_mb": 0.3}) == "unsized\n0.30 MB"
