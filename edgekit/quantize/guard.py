"""INT8 under an accuracy budget: return the most sensitive layers to float until the drop fits."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .config import WEIGHTED_OPS, QuantConfig
from .exclusions import excluded_nodes
from .ort import preprocess_for_quantization, run_quantizer


@dataclass(frozen=True)
class GuardOptions:
    """The accuracy guard: ``metric(path)`` scores a model (top-1 % or agreement %, higher is better) and
    ``baseline`` is the float model's score; with ``max_drop``, layers return to float (the most sensitive first,
    by ``sensitivity_error(path)``, a model's output error on a small subset) until the drop fits, at most
    ``max_float_layers`` of them (NNCF's max_num_iterations)."""

    metric: Callable[[Path], float]
    baseline: float
    max_drop: float | None = None
    sensitivity_error: Callable[[Path], float] | None = None
    max_float_layers: int | None = None


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
                        cache_key: str, guard: GuardOptions | None = None, progress=None) -> Int8Result:
    """INT8 QDQ model at ``out_path``; with ``guard.max_drop``, float layers are added until the drop fits.

    ``calib`` is a calibration source (see ``edgekit.data.calibration.reader_for``): a ``CalibrationSet``, an
    array of preprocessed samples, any reader with ``get_next()`` (onnxruntime's ``CalibrationDataReader``
    shape) or an iterable of batches. It is read at most once, and only when ``cache_file`` holds no ranges
    under ``cache_key``: the guard's repeated quantizations (sensitivity, trials) reuse the ranges of that one
    pass, so a one-shot reader is enough here. A caller that calibrates one source several times (another
    config, another cache key) materializes it first with ``calibration.from_reader``.
    """
    import onnx

    from ..data.calibration import describe_source, read_cache, reader_for, write_cache

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
            reader = reader_for(calib, input_name)
        run_quantizer(pre, out_path, cfg, ranges_file, reader, base_excl)
        if cached is None:
            write_cache(cache_file, cache_key, json.loads(ranges_file.read_text()),
                        {"model": fp32_path.name, "config": cfg.method_fields(), "calibration": describe_source(calib)})

        if guard is None:
            return Int8Result(out_path, base_excl, [], None, None, None, None, cache=cache_info)
        metric, baseline, max_drop = guard.metric, guard.baseline, guard.max_drop
        score = metric(out_path)
        drop = baseline - score
        steps = [GuardStep(list(base_excl), score, drop)]
        if max_drop is None or drop <= max_drop:
            return Int8Result(out_path, base_excl, [], baseline, score, drop,
                              None if max_drop is None else drop <= max_drop, steps, cache=cache_info)

        # Sensitivity: quantize one weighted layer at a time and measure the output error it alone causes.
        candidates = [n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name not in base_excl]
        errors = []
        from ..progress import track_progress

        with track_progress(progress) as prog:
            task = prog.add_task("INT8 sensitivity per layer", total=len(candidates))
            for name in candidates:
                one = tmp / "one.onnx"
                run_quantizer(pre, one, cfg, ranges_file, None, nodes_to_quantize=[name])
                errors.append((name, float(guard.sensitivity_error(one))))
                prog.advance(task)
            errors.sort(key=lambda t: -t[1])
            best = (drop, out_path.read_bytes(), [])
            task = prog.add_task("INT8 accuracy guard", total=None)
            limit = len(errors) if guard.max_float_layers is None else min(len(errors), guard.max_float_layers)
            for k in _exclusion_schedule(limit):
                floated = [n for n, _ in errors[:k]]
                trial = tmp / "trial.onnx"
                run_quantizer(pre, trial, cfg, ranges_file, None, base_excl + floated)
                score = metric(trial)
                steps.append(GuardStep(base_excl + floated, score, baseline - score))
                if baseline - score < best[0]:
                    best = (baseline - score, trial.read_bytes(), floated)
                if baseline - score <= max_drop:
                    break
            prog.remove_task(task)
        out_path.write_bytes(best[1])
        final = base_excl + best[2]
        return Int8Result(out_path, final, best[2], baseline, baseline - best[0], best[0], best[0] <= max_drop,
                          steps, errors, cache_info)
