"""The GPU side by side: the TensorRT engine against PyTorch eager on the same GPU (what a user would otherwise
run), at batch 1 and the engine's max profile batch, end to end (with copies) and GPU compute alone."""

from __future__ import annotations

import numpy as np

from .profile import TimingOptions, time_runner
from .stats import latency_stats


def batch_of(x: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` images, repeating ``x`` when it holds fewer."""
    return np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])).astype(np.float32))


def row(name: str, batch: int, e2e: dict | None, compute: dict | None) -> dict:
    """One table row; throughput from the end-to-end median (what an application sees), else from compute."""
    basis = e2e or compute
    return {"runtime": name, "batch": batch,
            "e2e_median_ms": e2e["median_ms"] if e2e else None, "e2e_p99_ms": e2e["p99_ms"] if e2e else None,
            "compute_median_ms": compute["median_ms"] if compute else None,
            "images_per_s": batch / basis["median_ms"] * 1e3 if basis and basis["median_ms"] > 0 else None}


def relative_to(rows: list[dict], reference: str) -> list[dict]:
    """Adds each row's end-to-end speed-up over ``reference`` at the same batch."""
    ref = {r["batch"]: r["e2e_median_ms"] for r in rows if r["runtime"] == reference}
    return [{**r, "speedup_vs_" + reference.replace(" ", "_"): (ref[r["batch"]] / r["e2e_median_ms"]
             if ref.get(r["batch"]) and r["e2e_median_ms"] else None)} for r in rows]


def engine_gpu_rows(runner, x: np.ndarray, timing: TimingOptions, progress) -> list[dict]:
    out = []
    for batch in sorted({1, runner.max_batch}):
        xb = batch_of(x, batch)
        e2e = time_runner(runner, xb, timing, progress, desc=f"tensorrt end to end, batch {batch}")
        compute = latency_stats(runner.compute_ms(batch, timing.repeats, timing.warmup), batch)
        out.append(row("tensorrt", batch, e2e, compute))
    return out


def torch_cuda_rows(source, x: np.ndarray, max_batch: int, timing: TimingOptions, progress,
                    notes: list[str]) -> list[dict]:
    """PyTorch eager FP32 and FP16 (channels_last) on the GPU, for the model the ONNX was exported from."""
    from .backends.torch import TorchRunner
    from .errors import EdgekitError
    from .source import open_model

    name = source.name
    try:
        model = open_model(name, source.weights).torch_model
    except EdgekitError:
        try:
            model = open_model(name, "random").torch_model
        except EdgekitError as exc:
            notes.append(f"no PyTorch side by side: {exc}")
            return []
        notes.append(f"PyTorch side by side ran {name} with random weights (its weights were not found here); "
                     "latency does not depend on the weight values, only agreement would")
    rows = []
    for label, fp16 in (("torch fp32", False), ("torch fp16 channels_last", True)):
        with TorchRunner(model, "cuda", fp16=fp16, channels_last=fp16, input_shape=source.input_shape) as r:
            for batch in sorted({1, max_batch}):
                e2e = time_runner(r, batch_of(x, batch), timing, progress, desc=f"{label}, batch {batch}")
                rows.append(row(label, batch, e2e, None))
    return rows
