"""One measurement loop for every backend: size, params, MACs, latency, memory, accuracy, agreement."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError
from ..stats import latency_stats


@dataclass
class TimingOptions:
    warmup: int = 10
    repeats: int = 100
    batch: int = 1  # a second batch size measured besides 1; needs a dynamic-batch model


def sweep_order(n: int, sweep: int) -> list[int]:
    """The order in which ``n`` engines run in sweep number ``sweep``: a stride through them coprime to ``n`` (1,
    n-1, 2, n-2, ...), a new one each sweep, from a new start. A plain rotation keeps every engine right after the
    same one in every sweep, so whatever that one leaves behind (worker threads still spinning, a pinned core,
    cold caches) would bias its successor the same way in every sweep, and the sweeps would not show it. Here the
    engine before each one changes from sweep to sweep, as long as the strides last (n - 1 of them for a prime n);
    no engine runs first in two sweeps of the first n."""
    from math import gcd

    if n < 1:
        return []
    strides = list(dict.fromkeys(s for pair in zip(range(1, n), range(n - 1, 0, -1)) for s in pair
                                 if gcd(s, n) == 1)) or [1]
    stride, start = strides[sweep % len(strides)], sweep % n
    return [(start + i * stride) % n for i in range(n)]


def time_runner(runner, x: np.ndarray, opts: TimingOptions, progress=None, desc: str = "timing") -> dict:
    """Warm up, then time ``opts.repeats`` calls of ``runner.infer(x)``; per-call ms statistics."""
    from ..progress import track_progress

    for _ in range(opts.warmup):
        runner.infer(x)
    samples = np.empty(opts.repeats)
    with track_progress(progress) as prog:
        task = prog.add_task(f"{desc} (batch {len(x)})", total=opts.repeats)
        for i in range(opts.repeats):
            t0 = time.perf_counter()
            runner.infer(x)
            samples[i] = (time.perf_counter() - t0) * 1e3
            prog.advance(task)
    return latency_stats(samples, batch_size=len(x))


def head_to_head(runners: dict[str, object], x: np.ndarray, rounds: int, warmup: int, repeats: int,
                 progress=None, pause_s: float = 0.005, desc: str = "head-to-head") -> dict[str, list[float]]:
    """Several runners, all open at once, timed in short blocks (``warmup`` then ``repeats`` calls), a new order each
    round (``sweep_order``); per runner, each block's median ms. A sweep times one runner for a second or more, and a
    busy spell on a shared CPU then lands on some runners and not others (on a 2-core cloud VM one sweep put two
    engines that differ by one option 0.68-1.23x apart); blocks a few milliseconds apart, over many rounds, see the
    same spells. The pause
    before each block lets the previous runner's worker threads stop spinning."""
    from ..progress import track_progress

    names = list(runners)
    out: dict[str, list[float]] = {n: [] for n in names}
    with track_progress(progress) as prog:
        task = prog.add_task(f"{desc}: {len(names)} x {rounds} rounds", total=rounds * len(names))
        for r in range(rounds):
            for name in (names[i] for i in sweep_order(len(names), r)):
                infer = runners[name].infer
                time.sleep(pause_s)
                for _ in range(warmup):
                    infer(x)
                samples = np.empty(repeats)
                for i in range(repeats):
                    t0 = time.perf_counter()
                    infer(x)
                    samples[i] = (time.perf_counter() - t0) * 1e3
                out[name].append(float(np.median(samples)))
                prog.advance(task)
    return out


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Linux lets a process reset its high-water mark (VmHWM) by writing 5 to clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def measure(runner, x_timing: np.ndarray, opts: TimingOptions, progress=None) -> dict:
    """Latency at batch 1 and at ``opts.batch``, and the peak memory while loading and running."""
    base = rss_mb()
    reset_peak_rss()
    runner.activate()
    loaded = rss_mb()
    result = {"latency": {"batch1": time_runner(runner, x_timing[:1], opts, progress)}}
    if opts.batch > 1:
        if runner.fixed_batch not in (None, opts.batch):
            raise EdgekitError(f"the model is fixed at batch {runner.fixed_batch}, so --batch {opts.batch} cannot run:"
                               " export with --dynamic-batch")
        xb = np.repeat(x_timing[:1], opts.batch, axis=0) if len(x_timing) < opts.batch else x_timing[:opts.batch]
        result["latency"][f"batch{opts.batch}"] = time_runner(runner, np.ascontiguousarray(xb), opts, progress)
    result["memory"] = {"rss_before_mb": base, "rss_loaded_mb": loaded, "peak_rss_mb": peak_rss_mb(),
                        "peak_over_before_mb": (peak_rss_mb() - base) if base is not None else None}
    result["timing"] = {"warmup": opts.warmup, "repeats": opts.repeats, "clock": "time.perf_counter"}
    return result


def compare_latency(models: dict[str, Path], x: np.ndarray, opts: TimingOptions, threads: int | None,
                    progress=None, sweep: int = 0) -> dict[str, dict]:
    """Batch-1 latency of several ONNX files on the CPU, each session alone in turn (never interleaved), in
    ``sweep_order`` for sweep number ``sweep`` (a caller that repeats the comparison passes its sweep)."""
    import gc

    from ..backends.onnxruntime import OnnxRuntimeRunner

    out = {}
    items = list(models.items())
    for name, path in (items[i] for i in sweep_order(len(items), sweep)):
        with OnnxRuntimeRunner(path, threads=threads) as r:
            out[name] = time_runner(r, x[:1], opts, progress, desc=f"timing {name}")
        gc.collect()
    return out


def time_in_turn(openers: dict, x: np.ndarray, opts: TimingOptions, sweeps: int = 3, progress=None) -> dict:
    """Batch-1 latency of several runners of any backend (``openers``: name -> a function that opens one), each
    loaded and timed alone, in turn, ``sweeps`` times in ``sweep_order`` (no runner always first or after the same
    one); per name the median of its sweep medians, their spread, and the last sweep's statistics. A runner that
    fails to open or run gets ``{"error": why}`` instead of stopping the others."""
    import gc

    from ..errors import first_line

    names = list(openers)
    medians: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for sweep in range(sweeps):
        for name in (names[i] for i in sweep_order(len(names), sweep)):
            if name in failed:
                continue
            try:
                with openers[name]() as r:
                    last[name] = time_runner(r, x[:1], opts, progress, desc=f"timing {name}")
                medians[name].append(last[name]["median_ms"])
            except Exception as exc:  # one runtime's failure is its row's reason, never the others'
                failed[name] = first_line(exc, 200)
            gc.collect()
    out = {}
    for n in names:
        if n in failed:
            out[n] = {"error": failed[n]}
            continue
        ms = sorted(medians[n])
        out[n] = {**last[n], "median_ms": float(np.median(ms)), "sweeps_ms": medians[n],
                  "spread_ms": ms[-1] - ms[0], "sweeps": sweeps}
    return out
