"""Pure functions for the figures edgekit reports: latency statistics, accuracy, agreement, sizes."""

from __future__ import annotations

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


def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Top-1 and top-5 accuracy in percent."""
    if len(labels) == 0:
        raise ValueError("no labels")
    return {"top1": 100.0 * float(topk_correct(logits, labels, 1).mean()),
            "top5": 100.0 * float(topk_correct(logits, labels, 5).mean()),
            "n": int(len(labels))}


def agreement(logits: np.ndarray, reference: np.ndarray) -> dict:
    """How closely ``logits`` follow ``reference``: top-1 agreement (%), mean cosine, max abs difference."""
    a = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)
    b = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {"top1_agreement": 100.0 * float((a.argmax(1) == b.argmax(1)).mean()),
            "mean_cosine": float(cos.mean()),
            "max_abs_diff": float(np.abs(a - b).max()),
            "n": int(len(a))}


def within_tolerance(max_abs_diff: float, reference: np.ndarray, atol: float, rtol: float) -> bool:
    """numpy.allclose's rule on the worst element, scaled by the reference's largest magnitude."""
    return max_abs_diff <= atol + rtol * float(np.abs(reference).max())


def mb(nbytes: int) -> float:
    return nbytes / 1e6


def ratio(a: float, b: float) -> float | None:
    return None if not b else a / b
