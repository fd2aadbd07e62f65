"""The GPU side by side: the TensorRT engine against PyTorch eager on the same GPU (what a user would otherwise
run), at batch 1 and the engine's max profile batch, end to end and GPU compute alone.

End to end, both copy through page-locked host buffers (TensorRT's runner and ``TorchRunner`` on CUDA alike), so
the speed-up is not partly the copy mode. GPU compute is timed as trtexec times it: inputs resident on the device,
launches enqueued back to back (replayed from a CUDA graph where the buffer library can capture one), device time
between events, one host wait at the end; each row says which (``compute_method``). PyTorch eager has no graph
here: its compute figure includes the host's launch gaps whenever Python enqueues slower than the GPU runs.
"""

from __future__ import annotations

import numpy as np

from ..stats import latency_stats
from .timing import TimingOptions, time_runner


def batch_of(x: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` images, repeating ``x`` when it holds fewer."""
    return np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])).astype(np.float32))


def row(name: str, batch: int, e2e: dict | None, compute: dict | None, method: str | None = None,
        copies: str | None = None) -> dict:
    """One table row; throughput from the end-to-end median (what an application sees), else from compute."""
    basis = e2e or compute
    return {"runtime": name, "batch": batch,
            "e2e_median_ms": e2e["median_ms"] if e2e else None, "e2e_p99_ms": e2e["p99_ms"] if e2e else None,
            "compute_median_ms": compute["median_ms"] if compute else None,
            "compute_p99_ms": compute.get("p99_ms") if compute else None, "compute_method": method,
            "host_copies": copies,
            "images_per_s": batch / basis["median_ms"] * 1e3 if basis and basis["median_ms"] > 0 else None}


def gpu_compute_ms(runner, x: np.ndarray, batch: int, timing: TimingOptions) -> tuple[list[float], str]:
    """Per-launch device milliseconds at ``batch`` and how they were taken (``runner.launcher``): ``warmup``
    launches, then ``repeats`` launches back to back between events, one host wait at the end."""
    launch, intervals, method = runner.launcher(batch, batch_of(x, batch))
    for _ in range(timing.warmup):
        launch()
    return intervals(launch, timing.repeats), method


def relative_to(rows: list[dict], reference: str) -> list[dict]:
    """Adds each row's end-to-end speed-up over ``reference`` at the same batch."""
    ref = {r["batch"]: r["e2e_median_ms"] for r in rows if r["runtime"] == reference}
    return [{**r, "speedup_vs_" + reference.replace(" ", "_"): (ref[r["batch"]] / r["e2e_median_ms"]
             if ref.get(r["batch"]) and r["e2e_median_ms"] else None)} for r in rows]


def engine_gpu_rows(runner, x: np.ndarray, timing: TimingOptions, progress, batches=None) -> list[dict]:
    """TensorRT at ``batches`` (default: 1 and its profile's max): end to end, and GPU compute."""
    out = []
    for batch in sorted(set(batches or {1, runner.max_batch})):
        xb = batch_of(x, batch)
        e2e = time_runner(runner, xb, timing, progress, desc=f"tensorrt end to end, batch {batch}")
        times, method = gpu_compute_ms(runner, x, batch, timing)
        out.append(row("tensorrt", batch, e2e, latency_stats(times, batch), method, "pinned"))
    return out


def conv_shapes_onnx(model) -> list[tuple[int, ...]]:
    """Every 4-D weight of the graph (convolutions; FP32, FP16 or the int8 behind a Q/DQ), sorted."""
    return sorted(tuple(int(d) for d in t.dims) for t in model.graph.initializer if len(t.dims) == 4)


def conv_shapes_torch(module) -> list[tuple[int, ...]]:
    return sorted(tuple(p.shape) for p in module.parameters() if p.dim() == 4)


def same_network(onnx_shapes: list, torch_shapes: list, onnx_sha: str | None, torch_sha: str | None) -> str | None:
    """None when the PyTorch model is the one the ONNX came from (every convolution's shape, the same weights
    file), else why not: a pruned export has fewer channels than the zoo model its metadata names."""
    if onnx_shapes != torch_shapes:
        diff = sum(a != b for a, b in zip(onnx_shapes, torch_shapes)) + abs(len(onnx_shapes) - len(torch_shapes))
        return (f"{diff} of {len(onnx_shapes)} convolution weights differ in shape (a pruned or otherwise changed "
                "network)")
    if onnx_sha and torch_sha and onnx_sha != torch_sha:
        return f"the weights differ (sha256 {torch_sha[:12]} here, {onnx_sha[:12]} in the ONNX's metadata)"
    return None


def torch_twin(source, onnx_path, notes: list[str]):
    """The PyTorch model the engine was built from, or None with the reason in ``notes``.

    When exporting, the source's own module (pruned, when --prune cut it). For an ONNX file, the zoo model and
    weights its metadata names, only when it is the same network; never random weights, which would time
    another model and make the speed-up favour TensorRT.
    """
    import copy

    from ..errors import EdgekitError
    from ..models.source import open_model

    if source.torch_model is not None:
        return copy.deepcopy(source.torch_model)  # the runner moves it to the GPU; the source stays as it is
    from ..graph.info import load_checked

    try:
        twin = open_model(source.name, source.weights)
    except EdgekitError as exc:
        notes.append(f"no PyTorch side by side: the model {source.name!r} with weights {source.weights!r} named in "
                     f"{onnx_path.name} cannot be opened here ({exc})")
        return None
    why = same_network(conv_shapes_onnx(load_checked(onnx_path)), conv_shapes_torch(twin.torch_model),
                       source.weights_sha256, twin.weights_sha256)
    if why is not None:
        notes.append(f"no PyTorch side by side: {source.name} opened from its weights is not the network in "
                     f"{onnx_path.name} ({why}); run `edgekit export ... --backend tensorrt` from the source model")
        return None
    return twin.torch_model


def torch_cuda_rows(source, onnx_path, x: np.ndarray, max_batch: int, timing: TimingOptions, progress,
                    notes: list[str]) -> list[dict]:
    """PyTorch eager FP32 and FP16 (channels_last) on the GPU, for the very model the engine was built from: end to
    end through page-locked buffers, as TensorRT's runner copies, and GPU compute as ``gpu_compute_ms`` takes it."""
    from pathlib import Path

    import torch

    from ..backends.torch import TorchRunner

    if not torch.cuda.is_available():
        notes.append(f"no PyTorch side by side: torch {torch.__version__} sees no CUDA GPU (built for "
                     f"{'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU only'})")
        return []
    model = torch_twin(source, Path(onnx_path) if onnx_path else None, notes)
    if model is None:
        return []
    rows = []
    for label, fp16 in (("torch fp32", False), ("torch fp16 channels_last", True)):
        with TorchRunner(model, "cuda", fp16=fp16, channels_last=fp16,
                         input_shape=source.input_shape) as r:
            for batch in sorted({1, max_batch}):
                e2e = time_runner(r, batch_of(x, batch), timing, progress, desc=f"{label}, batch {batch}")
                times, method = gpu_compute_ms(r, x, batch, timing)
                rows.append(row(label, batch, e2e, latency_stats(times, batch), method, r.host_copies))
    return rows
