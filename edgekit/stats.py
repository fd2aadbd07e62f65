"""Pure functions for the figures edgekit reports: latency statistics, accuracy, agreement, sizes."""

from __future__ import annotations

import math

import numpy as np


def latency_stats(samples_ms, batch_size: int = 1) -> dict:
    """Median, p90, p99, mean, std, min, max of per-call latencies, and throughput from the median."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    med = float(np.median(a))
    return {
        "n": int(a.size),
        "batch": int(batch_size),
        "median_ms": med,
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "throughput_ips": batch_size * 1000.0 / med if med > 0 else float("inf"),
    }


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per sample: is the label among the k highest logits."""
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return (top == np.asarray(labels)[:, None]).any(axis=1)


def accuracy_parts(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: the label at top-1, within the top 5. Parts of batches concatenate into the parts of the set."""
    return {"top1": topk_correct(logits, labels, 1), "top5": topk_correct(logits, labels, 5)}


def accuracy_from(parts: dict[str, np.ndarray]) -> dict:
    """Top-1 and top-5 accuracy in percent, from :func:`accuracy_parts` of all the samples."""
    if len(parts["top1"]) == 0:
        raise ValueError("no labels")
    return {"top1": 100.0 * float(parts["top1"].mean()), "top5": 100.0 * float(parts["top5"].mean()),
            "n": int(len(parts["top1"]))}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 and top-5 accuracy in percent."""
    if len(labels) == 0:
        raise ValueError("no labels")
    return accuracy_from(accuracy_parts(logits, labels))


def agreement_parts(logits: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: the same top-1 as ``reference``, the cosine of the two logit vectors, the largest difference."""
    a = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
    b = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {"same_top1": a.argmax(1) == b.argmax(1), "cosine": cos,
            "max_abs": np.abs(a - b).max(1) if a.size else np.zeros(len(a))}


def agreement_from(parts: dict[str, np.ndarray]) -> dict:
    """Top-1 agreement (%), mean cosine and max abs difference, from :func:`agreement_parts` of all the samples."""
    return {"top1_agreement": 100.0 * float(parts["same_top1"].mean()),
            "mean_cosine": float(parts["cosine"].mean()),
            "max_abs_diff": float(parts["max_abs"].max()),
            "n": int(len(parts["same_top1"]))}


def agreement(logits: np.ndarray, reference: np.ndarray) -> dict:
    """How closely ``logits`` follow ``reference``: top-1 agreement (%), mean cosine, max abs difference."""
    return agreement_from(agreement_parts(logits, reference))


def concat_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The parts of consecutive batches as the parts of all their samples."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def paired_drop(correct, ref_correct, z: float = 1.96) -> dict:
    """A candidate's drop against its reference on the same images, in points, with its paired (McNemar) standard
    error and a ``z``-sigma interval. Only the images whose answer changed carry information: a 0.2-point drop made
    of 1 image broken and none fixed is sure, the same drop made of 16 broken and 15 fixed is not (on 505 images it
    is 0.2 +- 2.2 points), and a budget cannot be judged finer than that."""
    c, r = np.asarray(correct, dtype=bool), np.asarray(ref_correct, dtype=bool)
    if c.shape != r.shape or c.ndim != 1 or c.size == 0:
        raise ValueError(f"per-image outcomes must be two equal, non-empty 1-D arrays, got {c.shape} and {r.shape}")
    n = c.size
    broken, fixed = int((r & ~c).sum()), int((~r & c).sum())
    d = (broken - fixed) / n
    se = 100.0 * float(np.sqrt(max((broken + fixed) / n - d * d, 0.0) / n))
    return {"n": int(n), "broken": broken, "fixed": fixed, "drop": 100.0 * d, "se": se,
            "low": 100.0 * d - z * se, "high": 100.0 * d + z * se, "z": z}


def images_to_settle(sure: dict, max_drop: float) -> int | None:
    """How many selection images would bring ``sure``'s interval (a ``paired_drop``) under ``max_drop``, were the
    rates of answers lost and gained to hold: the standard error shrinks as 1/sqrt(n), so n grows by
    (z * se / (max_drop - drop))^2. None when the interval is already under it, or the drop itself is not."""
    gap = max_drop - sure["drop"]
    if sure["high"] <= max_drop or gap <= 0:
        return None
    return int(np.ceil(sure["n"] * (sure["z"] * sure["se"] / gap) ** 2))


def sign_test(a_ms, b_ms) -> dict:
    """Is ``a`` faster than ``b``, from paired timings (round by round, the same spells of a busy CPU on both)? The
    one-sided exact sign test: the chance of ``a`` winning at least as many of the rounds that differ, were the two
    equally fast. A magnitude-free test, so one round's spike weighs no more than one round; pair it with the
    median round ratio (``ratio``) to bound how much slower a candidate called a tie may be."""
    a, b = np.asarray(a_ms, dtype=np.float64), np.asarray(b_ms, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired timings must be two equal, non-empty 1-D arrays, got {a.shape} and {b.shape}")
    a_wins, b_wins = int((a < b).sum()), int((b < a).sum())
    n = a_wins + b_wins
    p = sum(math.comb(n, k) for k in range(a_wins, n + 1)) / 2 ** n if n else 1.0
    return {"n": int(a.size), "a_faster": a_wins, "b_faster": b_wins, "p": float(p),
            "ratio": float(np.median(b / a))}


def within_tolerance(max_abs_diff: float, reference: np.ndarray, atol: float, rtol: float) -> bool:
    """numpy.allclose's rule on the worst element, scaled by the reference's largest magnitude."""
    return max_abs_diff <= atol + rtol * float(np.abs(reference).max())


def mb(nbytes: int) -> float:
    return nbytes / 1e6


def ratio(a: float, b: float) -> float | None:
    return None if not b else a / b
