"""The export request: every option survives `--save-recipe` then `edgekit run`, the command's conveniences
are the request's own (so Python and the command behave alike), and every contradiction is refused when the
request is built, before any file is read."""

from __future__ import annotations

import dataclasses
import re

import pytest

from edgekit.api import BackendOptions, ExportRequest, GraphOptions, PreprocessOverrides, QuantizeOptions
from edgekit.errors import EdgekitError
from edgekit.recipe.from_args import from_export_request
from edgekit.recipe.spec import dump, load

# One non-default value per option, and what else that value needs to make a valid request. A field added to
# the request without a line here fails test_every_option_has_a_case: the round trip covers every option.
CASES = {
    "out": ("o/x", {}),
    "weights": ("random", {}),
    "num_classes": (10, {}),
    "trust_checkpoint": (True, {}),
    "eval_data": ("val", {}),
    "preprocess.input_size": (64, {}),
    "preprocess.resize_size": (72, {}),
    "preprocess.interpolation": ("bicubic", {}),
    "preprocess.mean": ((0.5, 0.5, 0.5), {}),
    "preprocess.std": ((0.25, 0.25, 0.25), {}),
    "export.opset": (17, {}),
    "export.dynamic_batch": (True, {}),
    "export.atol": (1e-3, {}),
    "export.rtol": (1e-2, {}),
    "export.max_images": (50, {}),
    "export.prune_ratio": (0.3, {}),
    "export.plan": ("p/plan.json", {}),
    "export.optimize": ("size", {}),
    "export.time_budget": (60.0, {"export.optimize": "latency"}),
    "export.finetune_data": ("ft", {"export.optimize": "latency"}),
    "export.prune_ratios": ((0.3,), {"export.optimize": "latency", "export.finetune_data": "ft"}),
    "export.finetune_epochs": (2, {"export.optimize": "latency", "export.finetune_data": "ft"}),
    "export.drop_rule": ("one-se", {"export.optimize": "latency"}),
    "export.formats": (("tflite", "ncnn"), {}),
    "export.prune_depth": (0.5, {"model": "shufflenet_v2_x1_0", "export.optimize": "latency",
                                 "export.finetune_data": "ft"}),
    "export.finetune_augment": ("none", {"export.optimize": "latency", "export.finetune_data": "ft"}),
    "quantize.precision": ("fp16", {}),
    "quantize.target": ("tensorrt", {"quantize.precision": "int8"}),
    "quantize.calib_data": ("calib", {"quantize.precision": "int8"}),
    "quantize.calib_size": (64, {"quantize.precision": "int8"}),
    "quantize.calib_method": ("percentile", {"quantize.precision": "int8"}),
    "quantize.percentile": (99.9, {"quantize.precision": "int8"}),
    "quantize.seed": (3, {"quantize.precision": "int8"}),
    "quantize.calib_cache": ("cache.json", {"quantize.precision": "int8"}),
    "quantize.max_drop": (0.5, {"quantize.precision": "int8"}),
    "quantize.max_float_layers": (2, {"quantize.precision": "int8"}),
    "quantize.exclude_ops": (("depthwise", "Sigmoid"), {"quantize.precision": "int8"}),
    "quantize.int8_ops": (("Conv",), {"quantize.precision": "int8"}),
    "quantize.per_tensor": (True, {"quantize.precision": "int8"}),
    "quantize.reduce_range": (False, {"quantize.precision": "int8"}),
    "backend.name": ("tensorrt", {"quantize.precision": "int8", "backend.device": "cuda"}),
    "backend.device": ("cuda", {"backend.name": "tensorrt", "quantize.precision": "fp16"}),
    "backend.threads": (2, {}),
    "backend.build_on": ("host", {"backend.name": "tensorrt", "backend.device": "cuda"}),
    "backend.workspace_mb": (512, {"backend.name": "tensorrt", "backend.device": "cuda",
                                   "quantize.precision": "fp16"}),
    "backend.dla_core": (0, {"backend.name": "tensorrt", "backend.device": "cuda", "quantize.precision": "int8"}),
    "backend.batch_profile": ((1, 4, 8), {"backend.name": "tensorrt", "backend.device": "cuda",
                                          "quantize.precision": "fp16"}),
    "backend.sparse_weights": (True, {"backend.name": "tensorrt", "backend.device": "cuda",
                                      "quantize.precision": "int8"}),
    "backend.builder_optimization_level": (4, {"backend.name": "tensorrt", "backend.device": "cuda",
                                               "quantize.precision": "int8"}),
}
RUN_TIME = {"model", "force"}  # the recipe names the model; --force belongs to each run, never to a recipe
SECTIONS = {"preprocess": PreprocessOverrides, "export": GraphOptions, "quantize": QuantizeOptions,
            "backend": BackendOptions}


def _options() -> list[str]:
    names = []
    for f in dataclasses.fields(ExportRequest):
        if f.name in SECTIONS:
            names += [f"{f.name}.{g.name}" for g in dataclasses.fields(SECTIONS[f.name])]
        elif f.name not in RUN_TIME:
            names.append(f.name)
    return names


def _request(settings: dict) -> ExportRequest:
    top = {k: v for k, v in settings.items() if "." not in k and k != "model"}
    parts = {s: {} for s in SECTIONS}
    for key, value in settings.items():
        if "." in key:
            section, name = key.split(".")
            parts[section][name] = value
    sections = {s: cls(**parts[s]) for s, cls in SECTIONS.items()}
    return ExportRequest(settings.get("model", "mobilenet_v2"), **top, **sections)


def test_every_option_has_a_case():
    assert set(_options()) == set(CASES)


@pytest.mark.parametrize("option", sorted(CASES))
def test_save_recipe_round_trip(option, tmp_path):
    value, needs = CASES[option]
    request = _request({**needs, option: value})
    section, _, name = option.rpartition(".")
    got = getattr(getattr(request, section), name) if section else getattr(request, option)
    assert got == value, f"{option} did not reach the request"  # the case sets what it claims to
    path = tmp_path / "r.yaml"
    path.write_text(dump(from_export_request(request)))
    again = load(path).export_request()
    assert again == request, f"{option}={value!r} changed on the way through {path.read_text()}"


def test_the_commands_conveniences_are_the_requests():
    """--target jetson: INT8 with TensorRT's Q/DQ, and a bundle the board builds; --backend tensorrt: Q/DQ for
    TensorRT and an engine built here; a batch profile makes the batch axis dynamic."""
    jetson = ExportRequest("mobilenet_v2", quantize=QuantizeOptions(target="jetson"))
    assert (jetson.precision, jetson.quantize.target, jetson.backend.name, jetson.backend.build_on) == \
        ("int8", "tensorrt", "tensorrt", "board")
    assert jetson.jetson == {} and jetson.engine is None
    here = ExportRequest("mobilenet_v2", quantize=QuantizeOptions("int8"),
                         backend=BackendOptions("tensorrt", "cuda", build_on="host", batch_profile=(1, 8, 32)))
    assert here.quantize.target == "tensorrt" and here.export.dynamic_batch and here.jetson is None
    assert here.engine == {"dynamic_batch": (1, 8, 32)}
    assert ExportRequest("mobilenet_v2", quantize=QuantizeOptions("fp16", target="jetson")).precision == "fp16"
    # normalizing twice changes nothing, which is what lets a saved request read back equal
    assert dataclasses.replace(jetson) == jetson


@pytest.mark.parametrize("settings, message", [
    ({"quantize.max_drop": 1.0}, "--max-drop guards INT8 accuracy"),
    ({"export.optimize": "latency", "quantize.max_drop": "off"}, "not off"),
    ({"export.time_budget": 30.0}, "--time-budget bounds the --optimize search"),
    ({"export.optimize": "latency", "quantize.precision": "int8"}, "--optimize tries FP32 and INT8 itself"),
    ({"export.optimize": "speed"}, "--optimize speed: choose latency or size"),
    ({"export.optimize": "latency", "quantize.target": "tensorrt"}, "--optimize measures on this CPU"),
    ({"export.optimize": "latency", "backend.name": "tensorrt", "backend.device": "cuda"},
     "--optimize chooses among CPU runtimes"),
    ({"backend.name": "openvino"}, "--backend openvino: export builds onnxruntime files or a tensorrt engine"),
    ({"backend.name": "tensorrt", "backend.device": "cuda"}, "a Jetson bundle carries an INT8 or FP16 model"),
    ({"backend.name": "tensorrt", "backend.device": "cuda", "backend.dla_core": 0, "quantize.precision": "fp16",
      "backend.batch_profile": (1, 2, 4)}, "DLA needs static shapes"),
    ({"export.prune_ratio": 0.3, "export.plan": "plan.json"}, "--prune with --plan"),
    ({"export.prune_ratio": 1.5}, "--prune 1.5"),
    ({"quantize.max_drop": -1.0, "quantize.precision": "int8"}, "must not be negative"),
    ({"quantize.target": "gpu", "quantize.precision": "int8"}, "unknown INT8 target 'gpu'"),
    ({"export.finetune_data": "ft"}, "--finetune-data feeds the pruned candidates of --optimize"),
    ({"export.finetune_data": "val", "export.optimize": "latency", "eval_data": "val"},
     "--finetune-data and --eval-data are both val"),
    ({"export.finetune_data": "ft", "export.optimize": "latency", "export.prune_ratio": 0.3},
     "--finetune-data with --prune or --plan"),
    ({"export.prune_ratios": (0.5, 1.0)}, "--prune-ratios 0.5,1: give one or more shares"),
    ({"export.prune_ratios": ()}, "--prune-ratios (none)"),
    ({"export.prune_depth": 1.0}, "--prune-depth 1: give the share of units to remove, in [0, 1)"),
    ({"export.prune_depth": 0.5}, "--prune-depth shapes the pruned candidates of --finetune-data"),
    ({"export.finetune_augment": "none"}, "--augment none shapes the pruned candidates of --finetune-data"),
    ({"export.finetune_augment": "mixup"}, "--augment mixup: choose crop-flip, flip, none"),
    ({"export.optimize": "latency", "export.finetune_data": "ft", "export.prune_depth": 0.5},
     "--prune-depth 0.5: removing units is built for ShuffleNetV2 only, not mobilenet_v2"),
    ({"export.finetune_epochs": 0}, "--finetune-epochs 0: give at least 1"),
])
def test_contradictions_are_refused_when_the_request_is_built(settings, message):
    with pytest.raises(EdgekitError, match=re.escape(message)):
        _request(settings)


def test_onnx_input_refusals_need_no_file():
    for graph, message in ((GraphOptions(dynamic_batch=True), "--dynamic-batch applies to torch models"),
                           (GraphOptions(prune_ratio=0.5), "--prune needs the torch model"),
                           (GraphOptions(optimize="latency", finetune_data="ft"),
                            "--finetune-data prunes and fine-tunes the torch model, not does/not/exist.onnx")):
        with pytest.raises(EdgekitError, match=message):
            ExportRequest("does/not/exist.onnx", export=graph)


def test_max_drop_off_round_trips(tmp_path):
    """`--max-drop off` used to be refused by --save-recipe; it is an option like the others."""
    request = _request({"quantize.precision": "int8", "quantize.max_drop": "off"})
    path = tmp_path / "r.yaml"
    path.write_text(dump(from_export_request(request)))
    assert load(path).export_request() == request


# The prune request's options, each at a non-default value; a field added without a case fails the first test.
PRUNE_CASES = {
    "out": "o/p", "weights": "random", "num_classes": 10, "trust_checkpoint": True, "eval_data": "val",
    "preprocess": PreprocessOverrides(64, 72, "bicubic", (0.5,) * 3, (0.25,) * 3),
    "prune.ratio": 0.4, "prune.importance": "taylor", "prune.round_to": 4, "prune.global_pruning": True,
    "prune.layer_ratios": (("features.3.conv.0.0", 0.5),), "prune.depth": 0.5, "sparsity": "2:4", "finetune_data": "ft",
    "finetune.epochs": 2, "finetune.optimizer": "sgd", "finetune.lr": 0.01, "finetune.weight_decay": 0.0,
    "finetune.batch_size": 16, "finetune.temperature": 2.0, "finetune.kd_weight": 0.5, "finetune.seed": 7,
    "finetune.augment": "none",
    "threads": 2,
}


def _prune_request(option: str, value):
    from edgekit.api import PruneRequest
    from edgekit.prune.finetune import FinetuneConfig
    from edgekit.prune.plan import PruneConfig

    section, _, name = option.partition(".")
    kwargs = {"prune": PruneConfig(0.3), "finetune_data": "ft"}
    if section == "prune":
        kwargs["prune"] = dataclasses.replace(kwargs["prune"], **{name: value})
    elif section == "finetune":
        kwargs["finetune"] = dataclasses.replace(FinetuneConfig(), **{name: value})
    else:
        kwargs[option] = value
    return PruneRequest("mobilenet_v2", **kwargs)


def test_every_prune_option_has_a_case():
    from edgekit.api import PruneRequest
    from edgekit.prune.finetune import FinetuneConfig
    from edgekit.prune.plan import PruneConfig

    names = {f.name for f in dataclasses.fields(PruneRequest)} - {"model", "force", "prune", "finetune"}
    names |= {f"prune.{f.name}" for f in dataclasses.fields(PruneConfig)}
    names |= {f"finetune.{f.name}" for f in dataclasses.fields(FinetuneConfig)}
    assert names == set(PRUNE_CASES)


@pytest.mark.parametrize("option", sorted(PRUNE_CASES))
def test_prune_save_recipe_round_trip(option, tmp_path):
    from edgekit.recipe.from_args import from_prune_request

    request = _prune_request(option, PRUNE_CASES[option])
    path = tmp_path / "p.yaml"
    path.write_text(dump(from_prune_request(request)))
    again = load(path).prune_request()
    assert again == request, f"{option} changed on the way through {path.read_text()}"


def test_save_recipe_refuses_an_importance_object():
    """A recipe names its importance: a Torch-Pruning Importance object cannot be written, and saying so beats a
    recipe that silently prunes by L1."""
    import torch_pruning as tp

    from edgekit.pipeline.prune import PruneRequest
    from edgekit.prune.plan import PruneConfig
    from edgekit.recipe.from_args import from_prune_request

    request = PruneRequest("mobilenet_v2", prune=PruneConfig(0.3, importance=tp.importance.GroupMagnitudeImportance()))
    with pytest.raises(EdgekitError, match=r"--save-recipe with a GroupMagnitudeImportance object as importance: a "
                                           r"recipe names its importance; register it"):
        from_prune_request(request)
