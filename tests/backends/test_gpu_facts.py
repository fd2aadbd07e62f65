"""What the GPU paths decide, checked without a GPU: device detection, the TensorRT import error, the engine
inspector's layer precisions and devices, the trtexec lines per version, DLA facts, onnxruntime provider
downgrades."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.backends.tensorrt.options import BuildOptions, GraphFacts, build_recipe
from edgekit.backends.tensorrt.trtexec import trtexec_command
from edgekit.errors import EdgekitError, MissingDependencyError

DATA = Path(__file__).resolve().parents[1] / "assets"
QDQ = GraphFacts("int8", 120, True, "input", (1, 3, 224, 224))
FP32 = GraphFacts("fp32", 0, True, "input", (1, 3, 224, 224))
FP16 = GraphFacts("fp16", 0, True, "input", (1, 3, 224, 224))


# --- a GPU is a device count above zero, not a library that imports -----------------------------------------

def test_require_gpu_counts_devices_not_imports(monkeypatch):
    """cuda-python 13 is installed here (torch pulls it) and there is no driver: it imports, yet
    cudaGetDeviceCount answers cudaErrorInsufficientDriver. With TensorRT present, require_gpu must refuse."""
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed here")
    from cuda.bindings import runtime

    err, count = runtime.cudaGetDeviceCount()
    if int(err) == 0 and count > 0:
        pytest.skip("this machine has a GPU")
    from edgekit.backends.tensorrt import cudamem
    from edgekit.backends.tensorrt import options as tensorrt

    monkeypatch.setattr(tensorrt, "require_tensorrt", lambda: "tensorrt stand-in")
    with pytest.raises(MissingDependencyError) as exc:
        tensorrt.require_gpu()
    msg = str(exc.value)
    assert "no NVIDIA GPU is reachable" in msg and f"cuda-python: {err.name} ({int(err)})" in msg and "\n" not in msg
    assert cudamem.installed_libraries() == set()


def test_no_device_reason_is_one_line_per_library():
    from edgekit.backends.tensorrt.cudamem import no_device_reason

    assert no_device_reason({"cuda-python": (0, "cudaErrorNoDevice (100)"), "torch": (1, None)}) is None
    assert no_device_reason({}) == "no CUDA library is installed (cuda-python, pycuda or torch with CUDA)"
    assert no_device_reason({"cuda-python": (0, "cudaErrorInsufficientDriver (35)"), "pycuda": (0, "RuntimeError: x")}
                            ) == "cuda-python: cudaErrorInsufficientDriver (35); pycuda: RuntimeError: x"


# --- TensorRT installed but its native libraries missing ----------------------------------------------------

def test_tensorrt_with_missing_native_library_names_it(tmp_path, monkeypatch):
    """The bindings wheel without its libs: ``import tensorrt`` raises ImportError naming the .so."""
    import sys

    pkg = tmp_path / "tensorrt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('raise ImportError("libnvonnxparser.so.11: cannot open shared object file: '
                                     'No such file or directory")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    from edgekit.backends.tensorrt.options import require_tensorrt

    with pytest.raises(MissingDependencyError) as exc:
        require_tensorrt()
    msg = str(exc.value)
    assert "installed but its native library libnvonnxparser.so.11 cannot be loaded" in msg
    assert "not installed" not in msg and "LD_LIBRARY_PATH" in msg


def test_tensorrt_absent_says_not_installed():
    from edgekit.backends.tensorrt.options import missing_tensorrt_message

    msg = missing_tensorrt_message(ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt"))
    assert msg.startswith("TensorRT is not installed: pip install 'tensorrt-cu12>=10'") and "edgekit[" not in msg
    other = missing_tensorrt_message(ImportError("cannot import name 'Logger' from 'tensorrt'"))
    assert "installed but it fails to import" in other


# --- the engine inspector: precision and device of every layer ----------------------------------------------
# tests/assets/trt_inspector.json holds one engine per case, each in the layout and with the strings of an NVIDIA
# source named in its "_sources" entry (TensorRT 10.x and 11.x schemas, Myelin kgen and ForeignNode layers, DLA).

@pytest.fixture(scope="module")
def inspector():
    return json.loads((DATA / "trt_inspector.json").read_text())


def test_inspector_counts_layer_precisions(inspector):
    from edgekit.backends.tensorrt.build import layer_summary, precision_failures

    s = layer_summary(inspector["v10_explicit_int8"])
    # two convolutions, a depthwise one with its residual Add fused, all Int8; the QDQ and output reformats apart
    assert s["precision"] == {"int8": 3} and s["bookkeeping"] == 2 and s["layers"] == 5
    assert s["device"] == {"GPU": 5} and s["detailed"] is True and s["opaque"] == []
    assert precision_failures(s, "int8", "GPU") == []
    h = layer_summary(inspector["fp16"])
    assert h["precision"] == {"fp16": 2} and precision_failures(h, "fp16", "GPU") == []


@pytest.mark.parametrize("schema", ["v11_split", "v11_list_root"])
def test_tensorrt_11_schema_is_read(inspector, schema):
    """11.x splits a tensor's "Format/Datatype" into "Format" and "DataType" and lists constants as "Constants":
    read with 10.x's keys, every layer was "unknown" and a real INT8 engine was refused."""
    from edgekit.backends.tensorrt.layers import layer_summary, precision_failures

    s = layer_summary(inspector[schema])
    assert s["precision"] == {"fp32": 1, "int8": 2} and s["bookkeeping"] == 1
    assert precision_failures(s, "int8", "GPU") == []


def test_myelin_layers(inspector):
    """10.x Myelin: kgen/gemm layers carry their weights among their inputs (read as the narrowest float type);
    a whole subgraph as one {ForeignNode[...]} hides its layers' precision: noted, not held against the engine."""
    from edgekit.backends.tensorrt.layers import hidden_note, layer_summary, precision_failures

    k = layer_summary(inspector["v10_myelin_kgen"])
    assert k["precision"] == {"fp32": 2, "int32": 1} and k["opaque"] == []
    assert precision_failures(k, "fp16", "GPU") == ["asked for FP16 but no layer runs in FP16 (layers: fp32 2, "
                                                    "int32 1)"]
    f = layer_summary(inspector["v10_foreign_node"])
    assert f["opaque"] == ["{ForeignNode[/encoder/Unsqueeze_3 + /encoder/Unsqueeze_4.../match_model/Squeeze]}"]
    assert f["precision"] == {} and f["bookkeeping"] == 1 and precision_failures(f, "int8", "GPU") == []
    assert hidden_note(f, "int8").startswith("no layer visibly runs in INT8: 1 Myelin ForeignNode layer(s)")
    assert hidden_note(f, "fp32") is None and hidden_note(k, "int8") is None


def test_fp16_or_int8_engine_without_its_layers_fails(inspector):
    from edgekit.backends.tensorrt.build import layer_summary, precision_failures

    s = layer_summary(inspector["fp32_only"])
    assert precision_failures(s, "fp16", "GPU") == ["asked for FP16 but no layer runs in FP16 (layers: fp32 2)"]
    assert precision_failures(s, "int8", "GPU") == ["asked for INT8 but no layer runs in INT8 (layers: fp32 2)"]
    assert precision_failures(s, "fp32", "GPU") == []


def test_dla_fallback_is_reported(inspector):
    from edgekit.backends.tensorrt.build import layer_summary, precision_failures

    s = layer_summary(inspector["dla"])
    assert s["device"] == {"DLA": 1, "GPU": 3}
    assert s["gpu_layers"] == ["/pool/GlobalAveragePool", "/classifier/Gemm"]  # the fallback, by name
    assert s["precision"] == {"int8": 3} and precision_failures(s, "int8", "DLA") == []
    gpu_only = layer_summary(inspector["v10_explicit_int8"])
    assert precision_failures(gpu_only, "int8", "DLA") == ["asked for the DLA but no layer runs on it (all fell "
                                                           "back to the GPU)"]


def test_names_only_inspector_cannot_vouch(inspector):
    from edgekit.backends.tensorrt.build import layer_summary, precision_failures

    s = layer_summary(inspector["names_only"])
    assert s["detailed"] is False and s["layers"] == 3
    assert precision_failures(s, "fp32", "GPU") == ["the engine inspector gave layer names only (3 layers): cannot "
                                                     "check precision"]
    assert layer_summary([])["detailed"] is False and layer_summary("not json")["layers"] == 0


def test_build_sets_detailed_profiling_verbosity():
    """Without DETAILED the inspector gives names only (the DLA fallback list was always empty)."""
    import inspect

    from edgekit.backends.tensorrt import build as tensorrt

    src = inspect.getsource(tensorrt._build)
    assert "config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED" in src
    assert src.index("profiling_verbosity") < src.index("build_serialized_network")


# --- trtexec lines: 10.x and 11.x measure alike -------------------------------------------------------------

def _flags(line: str) -> dict:
    return dict((p.split("=", 1) + [""])[:2] for p in line.split()[1:])


def test_trtexec_10_and_11_time_the_same_way():
    """11.x: no data transfers, CUDA graphs and spin wait are the defaults and their flags deprecated no-ops."""
    f10 = _flags(trtexec_command("m.onnx", "m.engine", BuildOptions("int8"), 10, QDQ))
    f11 = _flags(trtexec_command("m.onnx", "m.engine", BuildOptions("int8"), (11, 4, 1), QDQ))
    assert {"--noDataTransfers", "--useCudaGraph", "--useSpinWait", "--stronglyTyped"} <= set(f10)
    deprecated_11 = {"--noDataTransfers", "--useCudaGraph", "--useSpinWait", "--stronglyTyped", "--fp16", "--int8"}
    assert not deprecated_11 & set(f11)
    same = {"--warmUp", "--iterations", "--percentile", "--timingCacheFile", "--memPoolSize", "--profilingVerbosity"}
    assert {k: f10[k] for k in same} == {k: f11[k] for k in same}
    assert f10["--warmUp"] == "500" and f10["--iterations"] == "500"  # --warmUp is milliseconds


def test_trtexec_dla_line_has_no_cuda_graph():
    """11.x turns CUDA graphs off with --useDLACore, so the 10.x DLA line must not turn them on; a 10.x DLA line is
    weakly typed with --fp16, as trtexec 10.3 builds DLA engines."""
    f10 = _flags(trtexec_command("m.onnx", "m.engine", BuildOptions("fp16", dla_core=0), 10, FP16))
    assert "--useDLACore" in f10 and "--useCudaGraph" not in f10 and "--noDataTransfers" in f10
    assert "--fp16" in f10 and "--stronglyTyped" not in f10
    with pytest.raises(EdgekitError, match=r"TensorRT 11\.0\.0 has no DLA support \(none in 11\.0-11\.3"):
        trtexec_command("m.onnx", "m.engine", BuildOptions("int8", dla_core=0), 11, QDQ)
    f114 = _flags(trtexec_command("m.onnx", "m.engine", BuildOptions("fp16", dla_core=0), (11, 4, 1), FP16))
    assert f114 == {**f114, "--useDLACore": "0"} and "--fp16" not in f114


def test_trtexec_uses_the_python_builds_timing_cache():
    from edgekit.backends.tensorrt.trtexec import timing_cache_path

    line = trtexec_command("model_int8.onnx", "model_int8.engine", BuildOptions("int8"), 10, QDQ)
    assert _flags(line)["--timingCacheFile"] == "model_int8.timing.cache"
    assert timing_cache_path(Path("out/model_int8.engine")) == Path("out/model_int8.timing.cache")


def test_dla_facts_per_tensorrt_version():
    """NVIDIA: 10.7 was the last 10.x release with DLA; none in 11.0-11.3, 11.4.0 on Windows on ARM only; 11.4.1
    on AGX Orin (JetPack 7.2.2+), strongly typed. On 10.x the DLA takes INT8 only by implicit quantization."""
    from edgekit.backends.tensorrt.options import dla_refusal, no_dla_message

    for v in ((11, 0, 0), (11, 3, 0), (11, 4, 0)):
        with pytest.raises(EdgekitError, match="has no DLA support"):
            build_recipe(BuildOptions("int8", dla_core=0), v, QDQ)
    with pytest.raises(EdgekitError, match=r"10\.7 was the last 10\.x release with DLA"):
        build_recipe(BuildOptions("fp16", dla_core=0), (10, 8, 0), FP16)
    assert build_recipe(BuildOptions("int8", dla_core=0), (11, 4, 1), QDQ)["device"] == "DLA"
    r = build_recipe(BuildOptions("fp16", dla_core=1), (10, 3, 0), FP16)
    assert r["device"] == "DLA" and r["network_flags"] == [] and r["builder_flags"] == ["FP16", "GPU_FALLBACK"]
    with pytest.raises(EdgekitError, match=r"--dla-core 1: TensorRT 10\.3\.0 runs INT8 on the DLA only from a "
                                           r"calibration cache"):
        build_recipe(BuildOptions("int8", dla_core=1), (10, 3, 0), QDQ)
    assert dla_refusal((10, 3, 0), "fp16") is None and dla_refusal((11, 5, 0), "int8") is None
    msg = no_dla_message((10, 3, 0))
    assert "Orin Nano has none" in msg and "11.4.1 on JetPack 7.2.2+" in msg


# --- onnxruntime: the provider asked for is the provider used -----------------------------------------------

def test_onnxruntime_refuses_a_silent_provider_downgrade(tmp_path, monkeypatch):
    """This onnxruntime is a CPU build: asked for CUDA (made to look available), it starts the session on the CPU
    with a warning the log level hides. The session's own provider list shows it."""
    import onnxruntime as ort
    from helpers import tiny_onnx_classifier

    from edgekit.backends.onnxruntime import session_from_onnx

    tiny_onnx_classifier(tmp_path / "t.onnx")
    real = ort.get_available_providers()
    assert "CUDAExecutionProvider" not in real
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with pytest.raises(EdgekitError, match=r"onnxruntime started .*t\.onnx on CPUExecutionProvider, not "
                                           r"CUDAExecutionProvider"):
        session_from_onnx(tmp_path / "t.onnx", "cuda")
    sess = session_from_onnx(tmp_path / "t.onnx", "cpu")
    x = np.zeros((1, 3, 8, 8), np.float32)
    assert sess.get_providers()[0] == "CPUExecutionProvider" and sess.run(None, {sess.get_inputs()[0].name: x})


# --- the PyTorch side by side times the engine's own model, or nothing --------------------------------------

def test_same_network_rule():
    from edgekit.measure.gpu import same_network

    a = [(16, 3, 3, 3), (32, 16, 1, 1)]
    assert same_network(a, list(a), "s", "s") is None and same_network(a, list(a), None, "t") is None
    assert same_network(a, [(11, 3, 3, 3), (32, 11, 1, 1)], None, None) == (
        "2 of 2 convolution weights differ in shape (a pruned or otherwise changed network)")
    assert "the weights differ" in same_network(a, list(a), "a" * 64, "b" * 64)


def test_pruned_onnx_gets_no_unpruned_pytorch_twin(tmp_path):
    """`export --prune`: the ONNX's metadata names squeezenet1_1 and its weights; reopening those gives the unpruned
    network, which must not be timed against the pruned engine (nor random weights in its place)."""
    from edgekit.api import BackendOptions, ExportRequest, GraphOptions
    from edgekit.graph.info import load_checked
    from edgekit.measure.gpu import conv_shapes_onnx, conv_shapes_torch, torch_twin
    from edgekit.models.source import PreprocessOverrides, open_model, open_onnx
    from edgekit.pipeline.export import export_model

    small = PreprocessOverrides(64, 64)
    for name, ratio in (("plain", None), ("pruned", 0.3)):
        export_model(ExportRequest("squeezenet1_1", tmp_path / name, weights="random", preprocess=small,
                                   export=GraphOptions(prune_ratio=ratio), backend=BackendOptions(threads=1)))
    notes: list[str] = []
    plain = torch_twin(open_onnx(tmp_path / "plain/model.onnx"), tmp_path / "plain/model.onnx", notes)
    assert notes == [] and conv_shapes_torch(plain) == conv_shapes_onnx(load_checked(tmp_path / "plain/model.onnx"))
    pruned_src = open_onnx(tmp_path / "pruned/model.onnx")
    assert torch_twin(pruned_src, tmp_path / "pruned/model.onnx", notes) is None
    assert len(notes) == 1 and notes[0].startswith("no PyTorch side by side: squeezenet1_1 opened from its weights "
                                                   "is not the network in model.onnx (")
    assert "convolution weights differ in shape" in notes[0] and "random" not in notes[0]
    # exporting, the source's own (pruned) module is the twin, copied so the GPU run leaves it alone
    src = open_model("squeezenet1_1", "random", overrides=small)
    twin = torch_twin(src, None, notes)
    assert twin is not src.torch_model and conv_shapes_torch(twin) == conv_shapes_torch(src.torch_model)


def test_build_prints_the_inspector_counts(inspector):
    from edgekit.backends.tensorrt.build import _layer_facts, layer_summary
    from edgekit.cli.build import layer_line

    dla = _layer_facts(layer_summary(inspector["dla"]), {"device": "DLA"})
    assert layer_line(dla) == ("engine layers: int8 3 (plus 1 reformat/no-op); on DLA 1, GPU 3; 2 fell back from "
                               "the DLA to the GPU: /pool/GlobalAveragePool, /classifier/Gemm")
    assert layer_line({}) == "engine layers: not inspected"
