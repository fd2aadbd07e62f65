"""Post-training INT8 (QDQ) with onnxruntime's quantizer, and the accuracy guard around it.

edgekit does not reimplement quantization: it chooses onnxruntime's settings for the target, feeds real
calibration images, caches the ranges, and keeps the most sensitive layers in float when the accuracy
budget demands it (NNCF's quantize_with_accuracy_control, done here for ONNX Runtime and TensorRT).
"""

from __future__ import annotations

import logging
import platform
from dataclasses import asdict, dataclass

from ..errors import EdgekitError

log = logging.getLogger("edgekit")

TARGETS = ("cpu", "tensorrt")
METHODS = ("minmax", "entropy", "percentile")
EXCLUDE_KINDS = ("depthwise", "se", "hardswish", "silu")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
DEFAULT_MAX_DROP = 1.0  # top-1 points an --int8 export may lose unless --max-drop says otherwise
# Instruction sets with a u8 x s8 dot product that accumulates in 32 bits (VNNI, AMX). Without one, x86 kernels
# (onnxruntime's and OpenVINO's) multiply u8 activations by s8 weights with vpmaddubsw, which adds each pair of
# products into a saturating int16: 2 x 255 x 127 overflows it, and the outputs clip.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")

# The extra_options edgekit lets through to onnxruntime, each with the type it must have.
EXTRA_OPTIONS = {
    "ActivationSymmetric": bool, "WeightSymmetric": bool, "QDQKeepRemovableActivations": bool,
    "CalibTensorRangeSymmetric": bool, "CalibMovingAverage": bool, "CalibMovingAverageConstant": float,
    "CalibPercentile": float, "ForceQuantizeNoInputCheck": bool, "AddQDQPairToWeight": bool,
    "DedicatedQDQPair": bool, "QuantizeBias": bool, "OpTypesToExcludeOutputQuantization": list,
}


@dataclass(frozen=True)
class QuantConfig:
    target: str = "cpu"  # cpu: u8 asymmetric activations; tensorrt: s8 symmetric (TensorRT's only INT8 form)
    method: str = "minmax"
    percentile: float = 99.999
    per_channel: bool = True  # per-tensor INT8 weights ruin depthwise nets (MobileNetV2 to ~0.1% top-1)
    exclude: tuple[str, ...] = ()  # kinds (depthwise, se, hardswish, silu) or ONNX op types kept in float
    int8_ops: tuple[str, ...] | None = None  # quantize only these op types (e.g. Conv, Gemm)
    extra: tuple[tuple[str, object], ...] = ()  # further onnxruntime extra_options, checked
    reduce_range: bool | None = None  # 7-bit weights; None: decided for the CPU here (see saturates_u8s8)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise EdgekitError(f"unknown INT8 target {self.target!r}: choose {' or '.join(TARGETS)}")
        if self.target == "tensorrt" and self.reduce_range:
            raise EdgekitError("--reduce-range is for CPU kernels without VNNI; TensorRT takes full-range "
                               "symmetric int8: drop --reduce-range")
        if self.reduce_range is None:
            from ..cpuinfo import cpu_info

            object.__setattr__(self, "reduce_range", self.target == "cpu" and saturates_u8s8(
                platform.machine(), cpu_info()[1]))
        if self.method not in METHODS:
            raise EdgekitError(f"unknown calibration method {self.method!r}: choose one of {', '.join(METHODS)}")
        if not 90.0 <= self.percentile < 100.0:
            raise EdgekitError(f"--percentile {self.percentile} must lie in [90, 100)")

    def method_fields(self) -> dict:
        """What the calibration ranges depend on (part of the cache key)."""
        d = {"method": self.method, "symmetric_activations": self.target == "tensorrt"}
        if self.method == "percentile":
            d["percentile"] = self.percentile
        return d

    def to_dict(self) -> dict:
        d = asdict(self)
        d["extra"] = dict(self.extra)
        return d


def saturates_u8s8(arch: str, isa) -> bool:
    """Whether INT8 kernels on this CPU can saturate u8 x s8 products: x86-64 without VNNI. There onnxruntime's
    quantizer is told ``reduce_range`` (weights in 7 bits, so 2 x 255 x 64 fits int16), as its documentation
    advises for such machines. On an AVX2 machine a pruned, fine-tuned digits MobileNetV2 lost over ten points in
    full-range INT8, and about what its QDQ graph run in float loses with 7-bit weights."""
    return arch.lower() in ("x86_64", "amd64", "i686", "i386") and not set(VNNI_FLAGS) & set(isa)


def extra_options(cfg: QuantConfig) -> dict:
    """The one place where edgekit's typed options become onnxruntime's string-keyed extra_options."""
    # logits stay float: one int8 scale over a classifier's output rounds close scores together
    opts: dict = {"WeightSymmetric": True, "OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]}
    if cfg.target == "tensorrt":
        # TensorRT: symmetric int8 activations, Q/DQ on the inputs of weighted layers (and residual Adds) only.
        # A pair on a Conv's output would sit between the Conv and its Relu/Clip, with the unclipped range
        # (EfficientNet-Lite0: 29% top-1 agreement with FP32 instead of 67%, benchmarks/int8_placement.py);
        # TensorRT fuses the activation into the Conv and takes the next layer's input scale for its output.
        # No int32 bias DequantizeLinear: TensorRT's Dequantize takes INT8/FP8/INT4/FP4 inputs only and its parser
        # refuses one ("only activation types allowed as input to this layer", onnx/onnx-tensorrt#850); TensorRT
        # quantizes the float bias itself (backends/tensorrt/onnx_rules.py checks every file for it).
        opts.update(ActivationSymmetric=True, QDQKeepRemovableActivations=True, CalibTensorRangeSymmetric=True,
                    OpTypesToExcludeOutputQuantization=[*WEIGHTED_OPS, "Add"], QuantizeBias=False)
    else:
        opts.update(ActivationSymmetric=False)
    if cfg.method == "percentile":
        opts["CalibPercentile"] = cfg.percentile
    for key, value in cfg.extra:
        if key not in EXTRA_OPTIONS:
            raise EdgekitError(f"unknown quantizer option {key!r}: edgekit passes only "
                               f"{', '.join(sorted(EXTRA_OPTIONS))}")
        want = EXTRA_OPTIONS[key]
        if not isinstance(value, want) or (want is float and isinstance(value, bool)):
            raise EdgekitError(f"quantizer option {key} needs a {want.__name__}, not {value!r}")
        opts[key] = value
    return opts


def ort_arguments(cfg: QuantConfig) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {
        "quant_format": QuantFormat.QDQ,
        "activation_type": QuantType.QInt8 if cfg.target == "tensorrt" else QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "per_channel": cfg.per_channel,
        "reduce_range": bool(cfg.reduce_range),
        "calibrate_method": {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                             "percentile": CalibrationMethod.Percentile}[cfg.method],
        "extra_options": extra_options(cfg),
    }
