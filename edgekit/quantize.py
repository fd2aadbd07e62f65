"""Post-training INT8 (QDQ) with onnxruntime's quantizer, and the accuracy guard around it.

edgekit does not reimplement quantization: it chooses onnxruntime's settings for the target, feeds real
calibration images, caches the ranges, and keeps the most sensitive layers in float when the accuracy
budget demands it (NNCF's quantize_with_accuracy_control, done here for ONNX Runtime and TensorRT).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .errors import EdgekitError, first_line

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


# --- which nodes stay in float: pure functions of the graph ---------------------------------------------

def _producers(model) -> dict:
    return {o: n for n in model.graph.node for o in n.output}


def _consumers(model) -> dict:
    out: dict = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def depthwise_convs(model) -> list[str]:
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    names = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        w = inits.get(n.input[1])
        if group > 1 and w is not None and w[1] == 1:
            names.append(n.name)
    return names


def se_nodes(model) -> list[str]:
    """Squeeze-and-excitation blocks: from a global pool that feeds a Conv, up to the gating Mul."""
    cons = _consumers(model)
    names: list[str] = []
    for n in model.graph.node:
        if n.op_type not in ("GlobalAveragePool", "ReduceMean"):
            continue
        nxt = cons.get(n.output[0], [])
        if not nxt or any(c.op_type != "Conv" for c in nxt):
            continue  # the classifier head's pool feeds Flatten/Gemm, not a Conv
        block, frontier = [n.name], list(nxt)
        while frontier:
            c = frontier.pop()
            if c.name in block:
                continue
            block.append(c.name)
            if c.op_type != "Mul":
                frontier += cons.get(c.output[0], [])
        names += block
    return names


def activation_nodes(model, kind: str) -> list[str]:
    """hardswish: HardSwish (or HardSigmoid + Mul); silu: Sigmoid + Mul(x, sigmoid(x))."""
    cons = _consumers(model)
    names = []
    for n in model.graph.node:
        if kind == "hardswish" and n.op_type == "HardSwish":
            names.append(n.name)
        gate = {"hardswish": "HardSigmoid", "silu": "Sigmoid"}[kind]
        if n.op_type == gate:
            muls = [c for c in cons.get(n.output[0], []) if c.op_type == "Mul" and n.input[0] in c.input]
            if muls:
                names += [n.name] + [m.name for m in muls]
    return names


def excluded_nodes(model, cfg: QuantConfig) -> list[str]:
    """Names of the nodes ``cfg`` keeps in float, in graph order."""
    chosen: set[str] = set()
    op_types = {n.op_type for n in model.graph.node}
    for kind in cfg.exclude:
        if kind == "depthwise":
            chosen.update(depthwise_convs(model))
        elif kind == "se":
            chosen.update(se_nodes(model))
        elif kind in ("hardswish", "silu"):
            chosen.update(activation_nodes(model, kind))
        elif kind in op_types:
            chosen.update(n.name for n in model.graph.node if n.op_type == kind)
        else:
            raise EdgekitError(f"--exclude-ops {kind}: neither one of {', '.join(EXCLUDE_KINDS)} nor an op type "
                               f"of this model ({', '.join(sorted(op_types))})")
    if cfg.int8_ops is not None:
        unknown = [t for t in cfg.int8_ops if t not in op_types]
        if unknown:
            raise EdgekitError(f"--int8-ops {', '.join(unknown)}: not an op type of this model "
                               f"({', '.join(sorted(op_types))})")
        chosen.update(n.name for n in model.graph.node if n.op_type not in cfg.int8_ops)
    if cfg.target == "tensorrt":
        # TensorRT fuses Q/DQ around the weighted layers and residual Adds; elsewhere QDQ only costs time
        chosen.update(n.name for n in model.graph.node if n.op_type not in (*WEIGHTED_OPS, "Add"))
    return [n.name for n in model.graph.node if n.name in chosen]


# --- running the quantizer ----------------------------------------------------------------------------

def preprocess_for_quantization(fp32_path: Path, out_path: Path) -> None:
    """onnxruntime's recommended pre-pass: shape inference and graph optimisation (BN folding)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger()
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def run_quantizer(model_path: Path, out_path: Path, cfg: QuantConfig, ranges_file: Path, reader=None,
                  nodes_to_exclude=(), nodes_to_quantize=None) -> None:
    """quantize_static with ranges from ``ranges_file`` (computed from ``reader`` and saved there if absent)."""
    from onnxruntime.quantization import quantize_static

    kwargs = ort_arguments(cfg)
    try:
        with _quiet():
            quantize_static(str(model_path), str(out_path), calibration_data_reader=reader,
                            nodes_to_exclude=list(nodes_to_exclude) or None, nodes_to_quantize=nodes_to_quantize,
                            calibration_cache_path=str(ranges_file), **kwargs)
    except EdgekitError:
        raise
    except Exception as exc:
        raise EdgekitError(f"onnxruntime's quantizer failed on {model_path.name} ({first_line(exc)}): "
                           "try --calib-method minmax or --exclude-ops for the failing layer") from None


@dataclass
class GuardStep:
    float_nodes: list[str]
    metric: float
    drop: float


@dataclass
class Int8Result:
    path: Path
    float_nodes: list[str]  # nodes kept in float by the user's exclusions and by the guard
    guard_nodes: list[str]  # of which the guard chose these
    baseline: float | None
    metric: float | None
    drop: float | None
    within_budget: bool | None  # None: no budget was given, so none was met or missed
    steps: list[GuardStep] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"float_nodes": self.float_nodes, "guard_nodes": self.guard_nodes, "baseline": self.baseline,
                "metric": self.metric, "drop": self.drop, "within_budget": self.within_budget,
                "steps": [asdict(s) for s in self.steps],
                "sensitivity_top": [{"node": n, "error": e} for n, e in self.sensitivity[:10]],
                "cache": self.cache}


def _exclusion_schedule(n: int) -> list[int]:
    """How many of the most sensitive nodes to keep in float at each guard step: 1, 2, 3, 4, 6, 8, 12..."""
    if n == 0:
        return []
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k = k + 1 if k < 4 else int(k * 1.5)
    return ks + [n]


def quantize_with_guard(fp32_path: Path, out_path: Path, cfg: QuantConfig, calib, cache_file: Path,
                        cache_key: str, metric: Callable[[Path], float] | None = None, baseline: float | None = None,
                        max_drop: float | None = None, sensitivity_error: Callable[[Path], float] | None = None,
                        progress=None, max_float_layers: int | None = None) -> Int8Result:
    """INT8 QDQ model at ``out_path``; with ``max_drop``, float layers are added until the drop fits.

    ``metric(path)`` scores a model (top-1 % or agreement %, higher is better) and ``baseline`` is the
    float model's score. ``sensitivity_error(path)`` measures a model's output error on a small subset.
    ``max_float_layers`` caps how many layers the guard may return to float (NNCF's max_num_iterations).
    """
    import onnx

    from .calibration import ArrayReader, read_cache, write_cache

    with tempfile.TemporaryDirectory(prefix="edgekit-q-") as tmpdir:
        tmp = Path(tmpdir)
        pre = tmp / "pre.onnx"
        preprocess_for_quantization(fp32_path, pre)
        model = onnx.load(str(pre))
        base_excl = excluded_nodes(model, cfg)
        input_name = next(i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer})
        ranges_file = tmp / "ranges.json"
        cached = read_cache(cache_file, cache_key)
        cache_info = {"file": str(cache_file), "key": cache_key, "hit": cached is not None}
        reader = None
        if cached is not None:
            ranges_file.write_text(json.dumps(cached))
        else:
            reader = ArrayReader(calib.x, input_name)
        run_quantizer(pre, out_path, cfg, ranges_file, reader, base_excl)
        if cached is None:
            write_cache(cache_file, cache_key, json.loads(ranges_file.read_text()),
                        {"model": fp32_path.name, "config": cfg.method_fields(), "calibration": calib.describe()})

        if metric is None:
            return Int8Result(out_path, base_excl, [], None, None, None, None, cache=cache_info)
        score = metric(out_path)
        drop = baseline - score
        steps = [GuardStep(list(base_excl), score, drop)]
        if max_drop is None or drop <= max_drop:
            return Int8Result(out_path, base_excl, [], baseline, score, drop,
                              None if max_drop is None else drop <= max_drop, steps, cache=cache_info)

        # Sensitivity: quantize one weighted layer at a time and measure the output error it alone causes.
        candidates = [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name not in base_excl]
        errors = []
        from .progress import track_progress

        with track_progress(progress) as prog:
            task = prog.add_task("INT8 sensitivity per layer", total=len(candidates))
            for name in candidates:
                one = tmp / "one.onnx"
                run_quantizer(pre, one, cfg, ranges_file, None, nodes_to_quantize=[name])
                errors.append((name, float(sensitivity_error(one))))
                prog.advance(task)
            errors.sort(key=lambda t: -t[1])
            best = (drop, out_path.read_bytes(), [])
            task = prog.add_task("INT8 accuracy guard", total=None)
            limit = len(errors) if max_float_layers is None else min(len(errors), max_float_layers)
            for k in _exclusion_schedule(limit):
                guard = [n for n, _ in errors[:k]]
                trial = tmp / "trial.onnx"
                run_quantizer(pre, trial, cfg, ranges_file, None, base_excl + guard)
                score = metric(trial)
                steps.append(GuardStep(base_excl + guard, score, baseline - score))
                if baseline - score < best[0]:
                    best = (baseline - score, trial.read_bytes(), guard)
                if baseline - score <= max_drop:
                    break
            prog.remove_task(task)
        out_path.write_bytes(best[1])
        final = base_excl + best[2]
        return Int8Result(out_path, final, best[2], baseline, baseline - best[0], best[0], best[0] <= max_drop,
                          steps, errors, cache_info)


def fp16_from_onnx(fp32_path: Path, out_path: Path, keep_io_types: bool = True) -> None:
    """FP16 weights and compute in the graph (what TensorRT 11 needs), float32 inputs/outputs by default."""
    import onnx

    # onnxruntime ships the converter of onnxconverter-common; no extra dependency for the same code
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    from .onnxinfo import topological_sort

    with _quiet():
        half = convert_float_to_float16(model, keep_io_types=keep_io_types)
    topological_sort(half)  # the converter appends its input casts at the end of the node list
    onnx.save(half, str(out_path))
