"""A `*-jetson-orin` recipe splits at the bundle: the host runs it up to the bundle (no TensorRT needed here),
the board builds from the bundle and checks the latency budget the recipe set."""

from __future__ import annotations

import json

import yaml


def test_jetson_recipe_runs_on_the_host_up_to_the_bundle(cli, tmp_path):
    doc = yaml.safe_load(open("recipes/squeezenet1_1-jetson-orin.yaml"))
    doc.update(weights="random", out=str(tmp_path / "out"))
    doc["preprocess"] = {"input_size": 64, "resize_size": 64}
    doc["quantize"].update(calib_size=8, max_drop=None)
    recipe = tmp_path / "sq-jetson.yaml"
    recipe.write_text(yaml.safe_dump(doc))
    code, out, err = cli("run", recipe, "--dry-run")
    assert code == 0 and "Jetson bundle (here) -> on the board: edgekit build BUNDLE" in out, err
    code, out, err = cli("run", recipe)
    assert code == 0, err
    bundle = tmp_path / "out/export/bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["budgets"] == {"max_latency_ms": doc["budgets"]["max_latency_ms"]}
    assert manifest["build"] == {"workspace_mb": 1024, "builder_optimization_level": 3, "precision": "int8"}
    from edgekit import __version__

    wheel = f"edgekit-{__version__}-py3-none-any.whl"  # the board installs edgekit from the bundle, never by name
    assert f"pip install --no-deps ./{wheel}" in (bundle / "README.md").read_text() and (bundle / wheel).exists()
    assert wheel in manifest["files"]
    assert not (tmp_path / "out/profile").exists()  # the TensorRT profile is the board's
    from edgekit.pipeline.jetson import judge

    ok = {"agreement": manifest["expected"]["agreement"], "top1": None}
    assert judge(manifest, {**ok, "latency_ms": 4.0}) == []
    assert judge(manifest, {**ok, "latency_ms": 7.25}) == ["batch-1 latency 7.250 ms > the recipe's budget 5.0 ms"]
    # the recipe's export request is checked when the recipe is read: refused before the dry run lists steps
    code, out, err = cli("run", recipe, "--dry-run", "--set", "quantize.precision=fp32", "--set",
                         "quantize.target=cpu")
    assert code == 2 and "a Jetson bundle carries an INT8 or FP16 model" in err and "valid" not in out, (out, err)
