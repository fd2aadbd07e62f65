"""engine_from_onnx on the double: the cache, the precision gate on both inspector schemas and behind Myelin, DLA
per TensorRT version, and the parser rules checked before TensorRT sees a file."""

from __future__ import annotations

import pytest

from edgekit.errors import EdgekitError

from .models import classifier, tensorrt_int8


def _build(path, precision="fp32", cache=None, engine=None, **kw):
    from edgekit.backends.tensorrt.build import engine_from_onnx
    from edgekit.backends.tensorrt.options import BuildOptions

    return engine_from_onnx(path, engine or path.with_suffix(".engine"), BuildOptions(precision, **kw),
                            cache_dir=cache)


def test_a_cached_engine_tensorrt_cannot_read_is_rebuilt_with_a_note(double, tmp_path):
    """deserialize_cuda_engine returns None for a corrupt cached engine: the build then raised AttributeError
    ('NoneType' object has no attribute 'create_engine_inspector') instead of building it again."""
    double.install()
    onnx = classifier(tmp_path / "m.onnx")
    first = _build(onnx, cache=tmp_path / "cache")
    cached = tmp_path / "cache" / f"{first['key']}.engine"
    assert first["cache"] == "miss" and cached.exists()
    assert _build(onnx, cache=tmp_path / "cache")["cache"] == "hit"
    cached.write_bytes(cached.read_bytes()[:40])  # a truncated copy
    again = _build(onnx, cache=tmp_path / "cache")
    assert again["cache"] == "rebuilt" and again["notes"][0].startswith(
        "the cached engine was not usable and was rebuilt: TensorRT 10.3.0 cannot deserialize it (")
    assert _build(onnx, cache=tmp_path / "cache")["cache"] == "hit"  # the rebuilt engine replaced the bad one


def test_a_timing_cache_this_tensorrt_cannot_read_is_replaced(double, tmp_path):
    double.install()
    onnx = classifier(tmp_path / "m.onnx")
    (tmp_path / "m.timing.cache").write_bytes(b"a cache from another TensorRT")
    assert _build(onnx)["cache"] == "miss"
    assert (tmp_path / "m.timing.cache").read_bytes().startswith(b"EDGEKIT-DOUBLE-TIMING-CACHE")


@pytest.mark.parametrize("version", ["10.3.0", "11.4.1"])
def test_int8_engine_passes_the_gate_on_both_inspector_schemas(double, tmp_path, version):
    """11.x splits "Format/Datatype" into "Format" and "DataType" and lists constants as "Constants": read as 10.x
    was, every layer's type came out unknown and a real INT8 engine was refused."""
    double.install(version)
    q = tensorrt_int8(classifier(tmp_path / "m.onnx"), tmp_path / "m_int8.onnx")
    info = _build(q, "int8")
    assert info["layers"]["precision"] == {"int8": 3} and info["layers"]["bookkeeping"] == 1
    assert info["recipe"]["network_flags"] == ([] if version.startswith("11") else ["STRONGLY_TYPED"])


def test_int8_hidden_in_a_myelin_foreign_node_is_noted_not_refused(double, tmp_path):
    """A 10.x engine whose network Myelin compiled shows one {ForeignNode[...]} layer with FP32 boundary tensors;
    read as FP32, the gate refused a real INT8 engine."""
    double.install("10.3.0", myelin=True)
    q = tensorrt_int8(classifier(tmp_path / "m.onnx"), tmp_path / "m_int8.onnx")
    info = _build(q, "int8")
    assert info["layers"]["opaque"] == ["{ForeignNode[conv1...fc]}"] and "int8" not in info["layers"]["precision"]
    assert "no layer visibly runs in INT8: 1 Myelin ForeignNode layer(s)" in info["notes"][0]
    from edgekit.cli.build import layer_line

    assert layer_line(info).endswith("1 Myelin ForeignNode layer(s) hide their precision")


def test_dla_builds_per_tensorrt_version(double, tmp_path):
    """10.x: DLA is weakly typed (as trtexec 10.3 builds it; strongly typed DLA is new in 11.4.1) and takes INT8 only
    from a calibration cache, so a Q/DQ INT8 DLA build is refused; 11.4.1: strongly typed, from the graph."""
    double.install("10.3.0", dla_cores=2)
    fp16 = classifier(tmp_path / "m16.onnx", fp16=True)
    assert _build(fp16, "fp16", dla_core=0)["layers"]["device"]["DLA"] == 1
    q = tensorrt_int8(classifier(tmp_path / "m.onnx"), tmp_path / "m_int8.onnx")
    with pytest.raises(EdgekitError, match=r"--dla-core 0: TensorRT 10\.3\.0 runs INT8 on the DLA only from a "
                                           r"calibration cache .*NVIDIA/TensorRT#2222"):
        _build(q, "int8", dla_core=0)
    double.install("11.4.1", dla_cores=2)
    info = _build(q, "int8", dla_core=0, engine=tmp_path / "dla11.engine")
    assert info["recipe"]["network_flags"] == [] and info["layers"]["device"] == {"DLA": 1, "GPU": 3}
    double.install("11.4.1", dla_cores=0)
    with pytest.raises(EdgekitError, match="--dla-core 0: this device has no DLA"):
        _build(q, "int8", dla_core=0, engine=tmp_path / "dla11b.engine")
    double.install("10.16.1", dla_cores=2)
    with pytest.raises(EdgekitError, match=r"10\.7 was the last 10\.x release with DLA"):
        _build(fp16, "fp16", dla_core=0, engine=tmp_path / "dla1016.engine")


def test_a_file_the_parser_would_refuse_is_refused_before_tensorrt_sees_it(double, tmp_path):
    """onnxruntime's default INT8 (asymmetric uint8 activations, int32 biases) is refused with the rule and the
    node, not with TensorRT's parser log."""
    double.install()
    from edgekit.quantize.config import QuantConfig
    from edgekit.quantize.guard import quantize_with_guard

    from .models import images

    onnx = classifier(tmp_path / "m.onnx")
    quantize_with_guard(onnx, tmp_path / "cpu.onnx", QuantConfig(target="cpu"), images(16), tmp_path / "c.json", "k")
    with pytest.raises(EdgekitError, match=r"^cpu\.onnx would not parse in TensorRT: node .* \[onnx-tensorrt "
                                           r"onnxOpImporters\.cpp QuantDequantLinearHelper\] \(and \d+ more\)"):
        _build(tmp_path / "cpu.onnx", "int8")
    assert not (tmp_path / "cpu.engine").exists()


def test_build_failures_carry_tensorrt_s_words(double, tmp_path):
    double.install("10.3.0")
    onnx = classifier(tmp_path / "m.onnx")
    from edgekit.backends.tensorrt import build as b

    real = b.build_recipe
    b.build_recipe = lambda *a: {**real(*a), "builder_flags": ["FP16"]}  # what the recipe must never ask
    try:
        with pytest.raises(EdgekitError, match=r"could not build an engine from m\.onnx \(.*BuilderFlag::kFP16 is "
                                               r"not allowed on a strongly typed network"):
            _build(onnx)
    finally:
        b.build_recipe = real
