"""Does a TensorRT engine compute what its ONNX file computes? The samples it is checked on, and the tolerance.

The check compares, image by image, the engine's top-1 class with the top-1 onnxruntime gives for the same
low-precision file on the host: a "flip" is an image where they differ. A healthy engine flips a few near-ties
(other kernels, other accumulation orders); a broken one (a wrong scale, a lost Q/DQ, a bad kernel) flips many.

The rule, stated: a healthy engine flips at most ``FLIP_RATE`` (1%) of images; the check allows the largest flip
count that such an engine exceeds with probability at most ``ALPHA`` (1%, one-sided binomial). So the tolerance
scales with the number of images: 1 flip of 7 photos (14.3 points), 7 of 256 (2.7), 18 of 1000 (1.8). With few
images only a badly broken engine can be told from a healthy one, and the manifest says how broken
(``detects_flip_rate``: the flip rate the check catches 9 times in 10).

Top-1 agreement with FP32 and top-1 accuracy can each move by at most the flip count over the images, so the same
count bounds them (``agreement_points``, ``top1_points``).
"""

from __future__ import annotations

import numpy as np

FLIP_RATE = 0.01
ALPHA = 0.01
POWER = 0.9
SAMPLES = 256  # images a Jetson bundle carries, spread over the classes


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X > k) for X ~ Binomial(n, p): one minus the probabilities of 0..k, each from log-gamma (no overflow)."""
    from math import exp, lgamma, log

    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0 if k < n else 0.0
    cdf = sum(exp(lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) + i * log(p) + (n - i) * log(1 - p))
              for i in range(0, min(k, n) + 1))
    return max(0.0, 1.0 - cdf)


def max_flips(n: int, rate: float = FLIP_RATE, alpha: float = ALPHA) -> int:
    """The most flips a healthy engine (flip rate ``rate``) shows on ``n`` images, at false-alarm rate ``alpha``."""
    k = 0
    while k < n and _binom_sf(k, n, rate) > alpha:
        k += 1
    return k


def detectable_rate(n: int, k: int, power: float = POWER) -> float:
    """The flip rate at which more than ``k`` flips of ``n`` images happen with probability ``power``."""
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _binom_sf(k, n, mid) < power else (lo, mid)
    return hi


def tolerance(n: int) -> dict:
    """The manifest's tolerance for a check on ``n`` images."""
    k = max_flips(n)
    points = 100.0 * k / n if n else 0.0
    return {"max_flips": k, "n": int(n), "flip_rate": FLIP_RATE, "alpha": ALPHA,
            "agreement_points": points, "top1_points": points, "detects_flip_rate": detectable_rate(n, k),
            "rule": f"a healthy engine flips at most {FLIP_RATE:.0%} of images against onnxruntime on the same file; "
                    f"more than {k} flips of {n} happen to one with probability <= {ALPHA:.0%}"}


def flips(engine_logits: np.ndarray, onnx_logits: np.ndarray) -> int:
    """Images whose top-1 class differs between the engine and onnxruntime on the same file."""
    return int((np.asarray(engine_logits).argmax(1) != np.asarray(onnx_logits).argmax(1)).sum())


def flip_failure(engine_logits: np.ndarray, onnx_logits: np.ndarray, what: str) -> str | None:
    """The one-line failure when the engine flips more images than the rule allows, else None."""
    n, f = len(onnx_logits), flips(engine_logits, onnx_logits)
    tol = tolerance(n)
    if f <= tol["max_flips"]:
        return None
    return (f"{what}: its top-1 differs from onnxruntime's on the same file for {f} of {n} images (a healthy engine: "
            f"at most {tol['max_flips']}; {tol['rule']})")


def spread_indices(labels, n: int = SAMPLES, count: int | None = None) -> list[int]:
    """Up to ``n`` image indices taken round-robin over the classes (in each class, in order), so a sample of an
    image folder sorted by class holds every class; without labels, ``n`` indices evenly spread over ``count``."""
    if labels is None:
        total = int(count or 0)
        if total <= n:
            return list(range(total))
        return sorted(set(np.linspace(0, total - 1, n).round().astype(int).tolist()))
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(int(c), []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    out: list[int] = []
    depth = 0
    while len(out) < n and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][: n - len(out)]
        depth += 1
    return sorted(out)
