"""Mixed-precision candidates for ``--optimize``: the accuracy guard's sensitivity ranking, the k most sensitive
layers kept in float, for several k, each file run on every backend.

Full INT8 of a depthwise or SE network can miss a 1-point budget by several points while keeping three layers in
float costs nothing measurable (EfficientNet-Lite0: 0.00 points held out, 1.57x FP32's speed), so the search must
hold these files beside the full-INT8 ones and judge them the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from .candidates import Candidate, mixed_ks


def _score_on(s, backend: str, path: Path) -> float:
    from .candidates import runner_for

    with runner_for(Candidate("score", backend, "int8"), path, s.threads) as r:
        return s.score(r, "selection")


def mixed_candidates(s, max_drop: float, backends: list[str], notes: list[str]) -> tuple[list[Candidate], dict]:
    """Rank the layers with the guard (judged on the selection half, by the worst of the backends, so its k fits
    every backend), then one candidate per backend and scheduled k. None when full INT8 already fits."""
    from ..quantize.guard import GuardOptions, quantize_with_guard

    sub, sub_ref = s.halves["selection"].head(64), s.sensitivity_ref

    def worst(path: Path) -> float:
        return min(_score_on(s, be, path) for be in backends)

    def sensitivity(path: Path) -> float:
        from ..measure.quality import run_batched
        from .candidates import runner_for

        with runner_for(Candidate("sens", "onnxruntime", "int8"), path, s.threads) as r:
            return float(((run_batched(r, sub) - sub_ref) ** 2).mean())

    (s.tmp / "candidates").mkdir(exist_ok=True)
    guard = GuardOptions(worst, s.baseline["selection"], max_drop, sensitivity)
    result = quantize_with_guard(s.fp32_path, s.tmp / "candidates" / "int8-guard.onnx", s.base_cfg, s.cal,
                                 s.cache_file, s.key, guard, s.progress)
    info = {"guard_drop": result.drop, "guard_float_layers": len(result.guard_nodes),
            "guard_within_budget": result.within_budget,
            "ranking": [{"node": n, "error": e} for n, e in result.sensitivity[:10]]}
    if not result.sensitivity:
        notes.append(f"full INT8 fits --max-drop {max_drop} on every backend: no mixed-precision candidates")
        return [], info
    ranking = [n for n, _ in result.sensitivity]
    base = tuple(n for n in result.float_nodes if n not in result.guard_nodes)
    k_fit = len(result.guard_nodes) if result.within_budget else None
    ks = mixed_ks(len(ranking), k_fit)
    info["ks"] = ks
    return [Candidate(f"{be}-int8-mixed-{k}", be, "int8", float_nodes=base + tuple(ranking[:k]))
            for k in ks for be in backends], info


def build_mixed(s, float_nodes: tuple[str, ...], out: Path) -> Path:
    """The Q/DQ file with ``float_nodes`` in float, from the same preprocessed graph and cached ranges as the
    guard (node names are those of onnxruntime's pre-pass, which is deterministic)."""
    from ..data.calibration import read_cache
    from ..quantize.ort import preprocess_for_quantization, run_quantizer

    pre = s.tmp / "candidates" / "pre.onnx"
    if not pre.exists():
        preprocess_for_quantization(s.fp32_path, pre)
    ranges = s.tmp / "candidates" / "ranges.json"
    if not ranges.exists():
        cached = read_cache(s.cache_file, s.key)
        if cached is None:  # the guard ran first and wrote them; a missing cache is a bug, not a user error
            raise RuntimeError(f"calibration ranges missing from {s.cache_file}")
        ranges.write_text(json.dumps(cached))
    run_quantizer(pre, out, s.base_cfg, ranges, None, nodes_to_exclude=list(float_nodes))
    return out
