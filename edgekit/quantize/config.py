"""Post-training INT8 (QDQ) with onnxruntime's quantizer, and the accuracy guard around it.

edgekit does not reimplement quantization: it chooses onnxruntime's settings for the target, feeds real
calibration images, caches the ranges, and keeps the most sensitive layers in float when the accuracy
budget demands it (NNCF's quantize_with_accuracy_control, done here for ONNX Runtime and TensorRT).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from ..errors import EdgekitError

log = logging.getLogger("edgekit")

TARGETS = ("cpu", "tensorrt")
METHODS = ("minmax", "entropy", "percentile")
EXCLUDE_KINDS = ("depthwise", "se", "hardswish", "silu")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
DEFAULT_MAX_DROP = 1.0  # top-1 points an --int8 export may lose unless --max-drop says otherwise

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

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise EdgekitError(f"unknown INT8 target {self.target!r}: choose {' or '.join(TARGETS)}")
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


def extra_options(cfg: QuantConfig) -> dict:
    """The one place where edgekit's typed options become onnxruntime's string-keyed extra_options."""
    # logits stay float: one int8 scale over a classifier's output rounds close scores together
    opts: dict = {"WeightSymmetric": True, "OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]}
    if cfg.target == "tensorrt":
        # TensorRT: symmetric int8 activations, Q/DQ on the inputs of weighted layers (and residual Adds) only.
        # A pair on a Conv's output would sit between the Conv and its Relu/Clip, with the unclipped range
        # (EfficientNet-Lite0: 29% top-1 agreement with FP32 instead of 67%, benchmarks/int8_placement.py);
        # TensorRT fuses the activation into the Conv and takes the next layer's input scale for its output.
        opts.update(ActivationSymmetric=True, QDQKeepRemovableActivations=True, CalibTensorRangeSymmetric=True,
                    OpTypesToExcludeOutputQuantization=[*WEIGHTED_OPS, "Add"])
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
        "calibrate_method": {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                             "percentile": CalibrationMethod.Percentile}[cfg.method],
        "extra_options": extra_options(cfg),
    }
