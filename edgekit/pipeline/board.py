"""`edgekit build BUNDLE` on the board: build the engine here, measure it, and fail when it disagrees with the host.

What the board checks is in the bundle (``jetson.read_manifest``); the tolerance rule is ``engine_check``'s.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from ..errors import BudgetExceededError


def device_facts() -> dict:
    """JetPack/L4T release, power mode, locked clocks, CUDA versions (each "n/a (why)" where absent), as
    `edgekit doctor` reads them."""
    from .doctor import jetson_facts, versions

    v = versions()
    return {"machine": platform.machine(), **jetson_facts(), "cuda runtime": v["cuda runtime"],
            "cuda driver": v["cuda driver"], "tensorrt": v["tensorrt"]}


def _logits(runner, x: np.ndarray) -> np.ndarray:
    """The engine's logits on every sample, in batches its profile takes (a static engine: its own batch; a short
    last batch is padded up to the profile's minimum and the padding dropped)."""
    lo, hi = runner.batch_range()
    out = []
    for i in range(0, len(x), hi):
        xb = x[i:i + hi]
        n = len(xb)
        if n < lo:
            xb = np.concatenate([xb, np.repeat(xb[-1:], lo - n, axis=0)])
        out.append(runner.infer(np.ascontiguousarray(xb))[:n])
    return np.concatenate(out)


def build_bundle(bundle: str | Path, out: str | Path | None = None, repeats: int = 200, force: bool = False) -> dict:
    """On the target: build the engine, time it end to end and on the GPU, check it against the manifest."""
    from ..backends.tensorrt.build import engine_from_onnx
    from ..backends.tensorrt.options import BuildOptions, require_tensorrt
    from ..backends.tensorrt.runner import TensorRTRunner
    from ..fsutil import staged_dir
    from ..measure.gpu import batch_of, engine_gpu_rows, gpu_compute_ms, row
    from ..measure.timing import TimingOptions, time_runner
    from ..report import document as report_mod
    from ..stats import accuracy, agreement, latency_stats
    from .engine_check import flips
    from .jetson import judge, read_manifest

    bundle = Path(bundle)
    doc = read_manifest(bundle)
    require_tensorrt()
    out = Path(out) if out else bundle / "build"
    samples = np.load(bundle / doc["samples"])
    x, ref = samples["x"], samples["fp32_logits"]
    lowp = samples["lowp_logits"] if "lowp_logits" in samples.files else None
    labels = samples["labels"] if "labels" in samples.files else None
    timing = TimingOptions(warmup=20, repeats=repeats)
    with staged_dir(out, force) as tmp:
        engine = tmp / (Path(doc["onnx"]).stem + ".engine")
        build = engine_from_onnx(bundle / doc["onnx"], engine, BuildOptions(**doc["build"]),
                                 cache_dir=bundle / "engine-cache")
        with TensorRTRunner(engine, dla_core=doc["build"].get("dla_core")) as r:
            logits = _logits(r, x)
            lo, hi = r.batch_range()  # batch 1, or the smallest a profile takes
            e2e = time_runner(r, batch_of(x, lo), timing, None, desc="tensorrt end to end")
            times, method = gpu_compute_ms(r, x, lo, timing)
            rows = [row("tensorrt", lo, e2e, latency_stats(times, lo), method, "pinned")]
            if hi > lo:
                rows += engine_gpu_rows(r, x, timing, None, batches=(hi,))
            backend = r.describe()
        measured = {"agreement": agreement(logits, ref)["top1_agreement"],
                    "top1": accuracy(logits, labels)["top1"] if labels is not None else None,
                    "flips": flips(logits, lowp) if lowp is not None else None, "n": int(len(x)),
                    "latency_ms": e2e["median_ms"], "compute_ms": float(np.median(times))}
        failures = judge(doc, measured)
        rep = report_mod.new_report(
            "build", model={"name": doc["model"]}, precision=doc["precision"], backend=backend, build=build,
            latency={f"batch{lo}": e2e}, gpu_compute={f"batch{lo}": {**latency_stats(times, lo), "method": method}},
            throughput=rows, measured=measured, expected=doc["expected"], tolerance=doc["tolerance"],
            failures=failures, verdict="fail" if failures else "pass", device=device_facts(),
            environment=report_mod.environment(), notes=build.get("notes", []), out=str(out))
        report_mod.write(rep, tmp)
    if failures:
        err = BudgetExceededError(f"{bundle}: the engine disagrees with the host: {'; '.join(failures)}")
        err.report = rep  # written to OUT too; the CLI shows its table before the reason
        raise err
    return rep
