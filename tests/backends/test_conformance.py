"""Every registered backend, held to the same contract on the same tiny net (``edgekit.backends.tiny``): its logits
agree with a float64 numpy forward pass, ``describe()`` names it, a wrong input shape is refused with an
EdgekitError, and a runner used before ``activate()`` refuses. A backend whose library is not installed, or whose
device is not here (TensorRT needs an NVIDIA GPU), is skipped with the reason. A new backend module registered in
``edgekit.backends.registry`` is picked up here with no change to this file."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.backends import registry
from edgekit.backends.base import BackendSpec, RunnerRequest
from edgekit.backends.tiny import tiny_onnx, tiny_torch, tiny_weights
from edgekit.errors import EdgekitError, MissingDependencyError
from edgekit.formats import registry as formats

# fp32 against a float64 reference: |got - ref| <= ATOL + RTOL * max|ref| on every logit (max|ref| is 3.19).
# On the CPU the kernels differ from numpy by float rounding only: 2.3e-7 (torch), 1.2e-6 (onnxruntime), 3.4e-7
# (OpenVINO) measured, against a bound of 4.2e-5. GPUs may run convolutions in TF32 (10-bit mantissa): 3.3e-2.
TOLERANCE = {"cpu": (1e-5, 1e-5), "gpu": (1e-3, 1e-2)}
SHAPE = (1, 3, 32, 32)  # tiny_onnx's fixed input

BACKENDS = [name if "cpu" in registry.get(name).devices else pytest.param(name, marks=pytest.mark.gpu)
            for name in registry.names()]


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """3x3 convolution, padding 1, NCHW."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w) + b[None, :, None, None]


def reference_logits(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The tiny net in float64 numpy: conv-relu, conv(stride 2)-relu, global average pool, linear."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    a = np.maximum(_conv(x.astype(np.float64), w["c1.weight"], w["c1.bias"], 1), 0)
    a = np.maximum(_conv(a, w["c2.weight"], w["c2.bias"], 2), 0)
    return a.mean(axis=(2, 3)) @ w["fc.weight"].T + w["fc.bias"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(weights, the ONNX file, a factory of the same net in torch)."""
    weights = tiny_weights()
    onnx_path = tiny_onnx(weights, tmp_path_factory.mktemp("tiny") / "tiny.onnx")
    return weights, onnx_path, lambda: tiny_torch(weights)


_CONVERTED: dict[str, Path] = {}


def open_tiny(name: str, tiny, work: Path):
    """(runner, device) for the tiny net on ``name``, or skip with why it cannot run here."""
    spec = registry.get(name)
    if not registry.available(name):
        pytest.skip(f"{name}: {', '.join(spec.requires)} not installed ({spec.fix})")
    try:
        devices = registry.devices_here(name)
    except EdgekitError as exc:
        pytest.skip(f"{name} cannot run here: {exc}")
    if not devices:
        pytest.skip(f"{name}: none of its devices ({', '.join(spec.devices)}) is here")
    device = "cpu" if "cpu" in devices else devices[0]
    _, onnx_path, make_torch = tiny
    module = make_torch() if "torch" in spec.inputs else None
    path = onnx_path if "onnx" in spec.inputs else None
    fmt = None if {"onnx", "torch"} & set(spec.inputs) else next((f for f in formats.names() if f in spec.inputs),
                                                                  None)
    if fmt is not None:  # a mobile runtime: the same net, converted by the format's own converter (once a module)
        path = _CONVERTED.get(fmt)
        if path is None:
            path = onnx_path.parent / formats.file_name(fmt, "fp32")
            formats.convert(fmt, formats.ConvertSource(make_torch(), onnx_path, SHAPE), path)
            _CONVERTED[fmt] = path
    request = RunnerRequest(path, module, device, threads=1, input_shape=SHAPE, work_dir=work)
    return registry.open_runner(name, request), device


@pytest.mark.parametrize("name", BACKENDS)
def test_logits_agree_with_the_numpy_reference(name, tiny, tmp_path):
    runner, device = open_tiny(name, tiny, tmp_path)
    x = np.random.default_rng(1).standard_normal((4, *SHAPE[1:])).astype(np.float32)
    ref = reference_logits(tiny[0], x)
    with runner as r:
        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
    assert got.shape == ref.shape and got.dtype == np.float32
    atol, rtol = TOLERANCE["cpu" if device == "cpu" else "gpu"]
    worst = float(np.abs(got - ref).max())
    assert worst <= atol + rtol * float(np.abs(ref).max()), f"{name} on {device}: max |diff| {worst:.3g}"
    assert (got.argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize("name", BACKENDS)
def test_describe_names_the_backend(name, tiny, tmp_path):
    runner, device = open_tiny(name, tiny, tmp_path)
    with runner as r:
        facts = r.describe()
    assert facts["backend"] == name and facts["device"] == device


@pytest.mark.parametrize("name", BACKENDS)
def test_wrong_input_shape_is_refused(name, tiny, tmp_path):
    runner, _ = open_tiny(name, tiny, tmp_path)
    with runner as r:
        with pytest.raises(EdgekitError, match=rf"^{name}: input shape \[1, 4, 32, 32\] does not fit"):
            r.infer(np.zeros((1, 4, 32, 32), np.float32))  # four channels into a three-channel net


@pytest.mark.parametrize("name", BACKENDS)
def test_infer_before_activate_is_refused(name, tiny, tmp_path):
    runner, _ = open_tiny(name, tiny, tmp_path)
    with pytest.raises(RuntimeError, match=rf"{name} runner used before activate\(\)"):
        runner.infer(np.zeros(SHAPE, np.float32))


@pytest.mark.parametrize("name", registry.names())
def test_backend_is_one_module_with_spec_and_open(name):
    """The registry's contract: one file per backend defining ``SPEC`` and ``open(request)``."""
    mod = registry.module(name)
    tree = ast.parse(Path(mod.__file__).read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "SPEC" in assigned and "open" in functions, f"{mod.__file__} must define SPEC and open"
    spec = mod.SPEC
    assert isinstance(spec, BackendSpec) and spec.name == name and registry.get(name) is spec
    assert list(inspect.signature(mod.open).parameters) == ["request"]
    assert spec.devices and spec.precisions and set(spec.inputs) <= {"onnx", "torch", *formats.names()}
    assert spec.inputs
    assert spec.requires and spec.fix and spec.wrong_input.format(model="m").startswith(f"the {name} backend")


def test_unknown_backend_lists_the_choices():
    with pytest.raises(EdgekitError, match="unknown backend 'tensorflow': choose one of " +
                       ", ".join(registry.names())):
        registry.get("tensorflow")


def test_missing_library_is_reported_not_raised_at_import(monkeypatch):
    """OpenVINO made unimportable: the registry says so cheaply, and requiring it names the install command."""
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert not registry.available("openvino") and registry.available("onnxruntime")
    with pytest.raises(MissingDependencyError, match=r"openvino is not installed for the openvino backend: "
                                                     r"pip install 'openvino>=[^']+' 'nncf>=[^']+' "
                                                     r"\(edgekit's \[openvino\] extra\)"):
        registry.require("openvino")


def test_recipe_dry_run_reports_a_missing_backend(tmp_path, monkeypatch):
    from edgekit.recipe.run import dry_run
    from edgekit.recipe.spec import load

    (tmp_path / "r.yaml").write_text("model: mobilenet_v2\nbackend:\n  name: openvino\n")
    recipe = load(tmp_path / "r.yaml")
    assert dry_run(recipe) == []
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert dry_run(recipe) == ["backend openvino: openvino is not installed here: pip install 'openvino>=2024.0' "
                               "'nncf>=2.10' (edgekit's [openvino] extra)"]
