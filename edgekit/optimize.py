"""Choosing the artifact: try candidates (backend x precision x op exclusions), measure each, keep the best.

No single runtime wins on a CPU: INT8 pays for SqueezeNet and MobileNetV2 but slows MobileNetV3 and
EfficientNet under onnxruntime (its quantized Sigmoid/Mul and ReduceMean cost more than the convolutions
gain), and OpenVINO beats onnxruntime on some models. So edgekit measures instead of guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import BudgetExceededError, EdgekitError

OBJECTIVES = ("latency", "size")


@dataclass(frozen=True)
class Candidate:
    name: str
    backend: str  # onnxruntime | openvino
    precision: str  # fp32 | int8
    exclude: tuple[str, ...] = ()
    int8_ops: tuple[str, ...] | None = None
    symmetric_activations: bool = False
    nncf: bool = False  # OpenVINO's own INT8 recipe (NNCF) instead of edgekit's Q/DQ ONNX


@dataclass
class Measured:
    candidate: Candidate
    latency_ms: float
    size_bytes: int
    metric: float  # top-1 % or top-1 agreement with FP32 %
    drop: float  # baseline - metric
    file: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self.candidate), "latency_ms": self.latency_ms, "size_bytes": self.size_bytes,
                "metric": self.metric, "drop": self.drop, "file": self.file, **self.extra}


def candidates(family: str | None, backends: list[str], nncf: bool = False) -> list[Candidate]:
    """The candidate set: FP32 and INT8 per backend, plus the INT8 exclusions that profiling showed matter
    (depthwise convs; the SiLU/hard-swish and SE blocks whose quantized forms are slow on CPU)."""
    out = []
    for be in backends:
        out.append(Candidate(f"{be}-fp32", be, "fp32"))
        out.append(Candidate(f"{be}-int8", be, "int8"))
        out.append(Candidate(f"{be}-int8-s8", be, "int8", symmetric_activations=True))
        out.append(Candidate(f"{be}-int8-no-depthwise", be, "int8", exclude=("depthwise",)))
        if family in ("mobilenet", "efficientnet", "mnasnet", None):
            out.append(Candidate(f"{be}-int8-no-act-se", be, "int8", exclude=("se", "hardswish", "silu")))
    if nncf and "openvino" in backends:
        out.append(Candidate("openvino-int8-nncf", "openvino", "int8", nncf=True))
    return out


def choose(measured: list[Measured], max_drop: float, objective: str = "latency") -> Measured:
    """The best candidate within the accuracy budget; ties go to the smaller file, then to the name."""
    if objective not in OBJECTIVES:
        raise EdgekitError(f"--optimize {objective!r}: choose latency or size")
    if not measured:
        raise EdgekitError("no candidate could be measured")
    ok = [m for m in measured if m.drop <= max_drop]
    if not ok:
        best = min(measured, key=lambda m: m.drop)
        raise BudgetExceededError(f"no candidate is within --max-drop {max_drop}: the closest, {best.candidate.name}, "
                                  f"loses {best.drop:.2f} points; raise the budget or calibrate on better data")
    if objective == "latency":
        return min(ok, key=lambda m: (round(m.latency_ms, 6), m.size_bytes, m.candidate.name))
    return min(ok, key=lambda m: (m.size_bytes, round(m.latency_ms, 6), m.candidate.name))
