"""Choosing the artifact: try candidates (backend x precision x op exclusions x runtime options), measure each,
keep the best.

No single runtime wins on a CPU: INT8 pays for SqueezeNet and MobileNetV2 but slows MobileNetV3 and
EfficientNet under onnxruntime (its quantized Sigmoid/Mul and ReduceMean cost more than the convolutions
gain), and OpenVINO beats onnxruntime on some models. So edgekit measures instead of guessing, in four
rounds: the precision candidates; INT8 with the op types that onnxruntime's profiler shows slower quantized
kept in float, one at a time, each kept only if it measured faster; runtime options (graph optimization level,
thread spinning, denormals, CPU pinning) on the fastest artifacts within the budget. Last, a runoff (``runoff``): the
candidates timed within 25% of the choice are loaded together and timed head-to-head, in short blocks over many
rounds, and the choice is made on those figures, since one round's sweeps on a shared CPU differ by as much; a
candidate the rounds cannot tell from the fastest in speed ties it, and of tied files the smallest ships.
Between the first two, mixed precision: the accuracy guard's sensitivity ranking, the k most sensitive layers kept
in float for several k, on every backend, when a full INT8 misses the budget (the depthwise and SE families).

Candidates are chosen on a selection split and reported on a disjoint judge split, so the reported drop is not
the one the choice was fitted to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import BudgetExceededError, EdgekitError
from ..stats import images_to_settle

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
    runtime: tuple[tuple[str, object], ...] = ()  # runner options, e.g. (("ENABLE_CPU_PINNING", True),)
    float_nodes: tuple[str, ...] = ()  # mixed precision: these nodes (the most sensitive) stay float
    pruned: float | None = None  # the channel ratio of a pruned and fine-tuned model (None: the model as given)
    fmt: str | None = None  # a mobile format (tflite, pte) converted from the torch model, run by its own runtime

    @property
    def artifact_key(self) -> tuple:
        """Candidates that differ only in runtime options (or backend) share one file."""
        return (self.precision, self.exclude, self.int8_ops, self.symmetric_activations, self.nncf, self.float_nodes,
                self.pruned, self.fmt)


@dataclass
class Measured:
    candidate: Candidate
    latency_ms: float
    size_bytes: int
    metric: float  # top-1 % or top-1 agreement with FP32 %
    drop: float  # baseline - metric
    file: str = ""
    extra: dict = field(default_factory=dict)
    margin: float = 0.0  # added to the drop where the budget is checked: one standard error under --drop-rule one-se

    @property
    def budget_drop(self) -> float:
        """The drop the budget is held to, by the search's drop rule."""
        return self.drop + self.margin

    def fits(self, max_drop: float) -> bool:
        return self.budget_drop <= max_drop

    def to_dict(self) -> dict:
        return {**asdict(self.candidate), "runtime": dict(self.candidate.runtime), "latency_ms": self.latency_ms,
                "size_bytes": self.size_bytes, "metric": self.metric, "drop": self.drop,
                "budget_drop": self.budget_drop, "file": self.file, **self.extra}


DROP_RULES = ("point", "one-se")


def drop_margin(rule: str, uncertainty: dict | None) -> float:
    """What ``rule`` adds to a measured drop before the budget check. ``point`` adds nothing: the choice is held to
    its drop on the selection half, as NNCF's accuracy control holds it. ``one-se`` adds the drop's paired standard
    error (``stats.paired_drop``): a candidate that changed many answers both ways must fit with room to spare, which
    trades speed for fewer choices found over budget on other images (``benchmarks/drop_uncertainty.py``)."""
    if rule not in DROP_RULES:
        raise EdgekitError(f"--drop-rule {rule!r}: choose {' or '.join(DROP_RULES)}")
    return float(uncertainty["se"]) if rule == "one-se" and uncertainty else 0.0


def candidates(caps, backends: list[str], nncf: bool = False) -> list[Candidate]:
    """The candidate set: FP32 and INT8 per backend, plus the INT8 exclusions that profiling showed matter
    (depthwise convs; the SiLU/hard-swish and SE blocks whose quantized forms are slow on CPU, where the model's
    card ``caps`` says it has them; ``caps`` None, a model without a card: tried)."""
    out = []
    for be in backends:
        out.append(Candidate(f"{be}-fp32", be, "fp32"))
        out.append(Candidate(f"{be}-int8", be, "int8"))
        out.append(Candidate(f"{be}-int8-s8", be, "int8", symmetric_activations=True))
        out.append(Candidate(f"{be}-int8-no-depthwise", be, "int8", exclude=("depthwise",)))
        if caps is None or caps.slow_int8_blocks:
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
    ok = [m for m in measured if m.fits(max_drop)]
    if not ok:
        best = min(measured, key=lambda m: m.budget_drop)
        rule = f" (plus one standard error, {best.margin:.2f}, under --drop-rule one-se)" if best.margin else ""
        raise BudgetExceededError(f"no candidate is within --max-drop {max_drop}: the closest, {best.candidate.name}, "
                                  f"loses {best.drop:.2f} points{rule}; raise the budget or calibrate on better data")
    if objective == "latency":
        return min(ok, key=lambda m: (round(m.latency_ms, 6), m.size_bytes, m.candidate.name))
    return min(ok, key=lambda m: (m.size_bytes, round(m.latency_ms, 6), m.candidate.name))


def uncertainty_note(sure: dict, max_drop: float) -> str:
    """Say when the choice fits the budget only as a point estimate: on few images, or with many answers changed
    both ways, its drop's interval reaches past ``max_drop`` (NNCF's accuracy control chooses the same way, on the
    point estimate; a held-out set can then find the budget missed)."""
    need = images_to_settle(sure, max_drop)
    # the selection is half of --eval-data (the other half is held out), so the advice is twice the half's count
    more = f" (about {2 * need} in all would settle it, at these rates)" if need else ""
    return (f"the choice's drop, {sure['drop']:.2f} points on {sure['n']} selection images ({sure['broken']} answers "
            f"lost, {sure['fixed']} gained), is {sure['low']:.2f} to {sure['high']:.2f} at 95%: more than "
            f"--max-drop {max_drop:g} is not ruled out; more --eval-data images narrow it{more}, and --drop-rule "
            "one-se holds every candidate to its drop plus one standard error")


def held_out_veto(best: Measured, measured: list[Measured], max_drop: float, objective: str,
                  n_judge: int) -> tuple[Measured, dict | None]:
    """The choice, unless it misses the budget on the held-out judge half (the selection half fitted it by chance:
    seen on SqueezeNet, -0.59 on 505 selection images, +1.82 on the other 495, +1.25 on 2000 more). Then the best
    candidate within the budget on both halves ships instead (FP32, whose drop is 0 on both, always is), and the
    returned veto says what happened: a choice over budget is never shipped with exit 0."""
    if best.extra["judge_drop"] <= max_drop:
        return best, None
    fallback = choose([m for m in measured if m.extra["judge_drop"] <= max_drop], max_drop, objective)
    note = (f"{best.candidate.name} fitted --max-drop {max_drop:g} on the selection half (drop {best.drop:.2f}) but "
            f"lost {best.extra['judge_drop']:.2f} points on the {n_judge} held-out judge images: not shipped. Shipped "
            f"{fallback.candidate.name} instead, within the budget on both halves (selection {fallback.drop:.2f}, "
            f"held-out {fallback.extra['judge_drop']:.2f}); the held-out half vetoed a choice, so its figure is no "
            "longer blind: pass more --eval-data images for a choice that holds")
    return fallback, {"candidate": best.candidate.name, "selection_drop": best.drop,
                      "judge_drop": best.extra["judge_drop"], "shipped": fallback.candidate.name, "note": note}


def split_selection_judge(n: int, labels=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint halves of ``n`` images: one to choose on, one to report on. With labels, each class is dealt
    alternately to both halves (after a seeded shuffle), so both see every class."""
    if n < 2:
        raise EdgekitError(f"--optimize needs at least 2 judge images to split into selection and judge halves, got "
                           f"{n}: pass --eval-data with labelled images")
    order = np.random.default_rng(seed).permutation(n)
    if labels is None:
        return np.sort(order[0::2]), np.sort(order[1::2])
    labels = np.asarray(labels)
    sel, judge = [], []
    in_order = labels[order]
    for c in np.unique(labels):
        members = order[in_order == c].tolist()
        sel += members[0::2]
        judge += members[1::2]
    if not judge:  # one image per class: deal the selection's surplus to the judge half
        judge, sel = sel[1::2], sel[0::2]
    return np.sort(np.asarray(sel, int)), np.sort(np.asarray(judge, int))


MIXED_KS = (1, 2, 3, 4, 6, 8)  # the guard's own schedule: how many of the most sensitive layers stay float


def mixed_ks(n_ranked: int, k_fit: int | None) -> list[int]:
    """The k of the mixed candidates: every scheduled k up to the one the guard found within budget (``k_fit``),
    and the next one as a margin for the judge split; all scheduled k when none fitted. Always fewer than
    ``n_ranked`` (all layers float is the FP32 candidate)."""
    ks = [k for k in MIXED_KS if k < n_ranked]
    if k_fit is None:
        return ks
    below = [k for k in ks if k < k_fit]
    above = [k for k in ks if k > k_fit][:1]
    return below + ([k_fit] if 0 < k_fit < n_ranked else []) + above


# runtime options worth a measurement on top of an artifact; each backend's runner checks the keys
RUNTIME_VARIANTS: dict[str, list[tuple[str, tuple]]] = {
    "onnxruntime": [
        ("denormals-zero", (("denormal_as_zero", True),)),
        ("no-spin", (("allow_spinning", False),)),  # pays when other processes share the cores
        ("extended-graph", (("optimization", "extended"),)),  # no NCHWc layout: pays for few models
    ],
    "openvino": [
        ("pinned", (("ENABLE_CPU_PINNING", True),)),
        ("pinned-denormals-zero", (("ENABLE_CPU_PINNING", True), ("CPU_DENORMALS_OPTIMIZATION", True))),
    ],
}


def runtime_variants(c: Candidate) -> list[Candidate]:
    """``c`` with each of its backend's runtime option sets (the default options are ``c`` itself)."""
    return [replace(c, name=f"{c.name}+{suffix}", runtime=opts) for suffix, opts in RUNTIME_VARIANTS.get(c.backend, [])]


def tuning_seeds(measured: list[Measured], max_drop: float, k: int = 2) -> list[Measured]:
    """The ``k`` fastest candidates within the budget, one per (backend, artifact): runtime options are tried on
    these only, since they move latency by tens of percent while precision moves it by 2x."""
    ok = sorted((m for m in measured if m.fits(max_drop) and not m.candidate.runtime),
                key=lambda m: (m.latency_ms, m.candidate.name))
    seen, out = set(), []
    for m in ok:
        key = (m.candidate.backend, m.file)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out[:k]


# onnxruntime's fused quantized kernels and the float op type each one replaces
QLINEAR = {"QLinearConv": "Conv", "QGemm": "Gemm", "QLinearMatMul": "MatMul", "MatMulInteger": "MatMul",
           "QLinearMul": "Mul", "QLinearAdd": "Add", "QLinearSigmoid": "Sigmoid", "QLinearLeakyRelu": "LeakyRelu",
           "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearAveragePool": "AveragePool",
           "QLinearConcat": "Concat", "QLinearSoftmax": "Softmax", "QLinearReduceMean": "ReduceMean"}
WEIGHTED = ("Conv", "Gemm", "MatMul", "ConvTranspose")  # INT8 is for these; keeping them float is the FP32 candidate
NOT_QUANTIZED = ("QuantizeLinear", "DequantizeLinear", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze")


def profiled_exclusions(int8_op_ms: dict[str, float], model_op_types: set[str], min_share: float = 0.05) -> list[str]:
    """Op types of the original graph to try in float, costliest first, from an INT8 model's per-op profile.

    Only unweighted ops qualify (their quantized kernels buy no GEMM speed, only Q/DQ work) and only those
    taking at least ``min_share`` of the INT8 time: the order a measured search should follow.
    """
    total = sum(int8_op_ms.values())
    if total <= 0:
        return []
    per_type: dict[str, float] = {}
    for op, ms in int8_op_ms.items():
        if op in NOT_QUANTIZED:
            continue
        orig = QLINEAR.get(op, op)
        if orig in model_op_types and orig not in WEIGHTED:
            per_type[orig] = per_type.get(orig, 0.0) + ms
    return [op for op, ms in sorted(per_type.items(), key=lambda kv: (-kv[1], kv[0])) if ms / total >= min_share]


def runner_for(cand: Candidate, path: Path, threads: int | None):
    """The candidate's runner on this CPU, with its runtime options."""
    from ..backends import registry
    from ..backends.base import RunnerRequest

    return registry.open_runner(cand.backend, RunnerRequest(path, device="cpu", threads=threads,
                                                            options=dict(cand.runtime)))
