"""The GPU side on a real GPU, without TensorRT: what the first machine with an NVIDIA GPU can check in one short run.

    PYTHONPATH=. python benchmarks/gpu_check.py --out gpu_check.json      (benchmarks/gpu_check.sh wraps it)

Parts, each PASS, FAIL (a wrong result: the exit status is 1) or SKIP (could not run here, with why):
  cuda-python   cudamem.CudaPythonMemory: page-locked buffers in float32/float16/int8 (the page-locked kind checked
                with cudaPointerGetAttributes), host->device->host round trips, a CUDA error named, events around
                back-to-back device copies (each interval above the copy's physical floor, and their sum the span
                between the first and last event), a CUDA graph captured and replayed (its copy checked), a capture
                that synchronizes refused.
  torch-memory  othermem.TorchMemory: the same round trip and events through torch.
  pycuda        othermem.PycudaMemory, where pycuda is installed.
  torch-runner  TorchRunner on CUDA in FP32 and FP16 channels_last against the CPU (FP32: within the GPU bound
                doctor uses, every top-1 equal; FP16: mean cosine >= 0.999), its staging buffers page-locked, GPU
                compute (launcher) at most its end-to-end time.
  side-by-side  measure.gpu.torch_cuda_rows: the PyTorch rows beside an engine (end to end and GPU compute, the
                copies page-locked), for batch 1 and 8.
  doctor        device probing and doctor's GPU rows: every CUDA library's count, the GPU's name and compute
                capability as torch sees them, the runtime and driver versions read, and the round trip through
                torch on CUDA (it exports ONNX: needs onnx).
What still needs TensorRT itself is listed at the end (and in the JSON). Exit 0: all ran and passed (pycuda may be
absent); 1: a FAIL; 2: nothing failed but a part did not run (no GPU, a missing module).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback

import numpy as np

NEEDS_TENSORRT = [
    "backends/tensorrt/build.py: engine_from_onnx, _build, inspect_engine, _checked_layers (a real build, the real "
    "inspector JSON of 10.x and 11.x, the engine cache and timing cache)",
    "backends/tensorrt/runner.py: TensorRTRunner (deserialize, set_input_shape, execute_async_v3, launcher's CUDA "
    "graph of a real enqueue), against onnxruntime on the same file",
    "backends/tensorrt/__init__.py: open (the backend's engine and its profile)",
    "measure/gpu.py: engine_gpu_rows and gpu_compute_ms on an engine (against trtexec's GPU compute time)",
    "pipeline/tensorrt.py: engine_stage; pipeline/board.py: build_bundle (`edgekit build` on a Jetson: DLA core, "
    "JetPack 6 TensorRT 10.3 and JetPack 7 TensorRT 11.4.1)",
    "pipeline/doctor.py: the tensorrt round-trip row",
    "the ONNX-parser rules (onnx_rules.py) against TensorRT's own parser on refused and accepted files",
    "trtexec.sh: the lines themselves (tools/check_trtexec_lines.py checks only trtexec's option parser)",
]


class Fail(Exception):
    """A wrong result."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Fail(what)


def part_cuda_python(report: dict) -> None:
    from cuda.bindings import runtime as rt

    from edgekit.backends.tensorrt.cudamem import CudaPythonMemory, _call
    from edgekit.errors import EdgekitError

    mem = CudaPythonMemory()
    try:
        for dtype in (np.float32, np.float16, np.int8):
            src, dst = mem.host((64, 3, 32, 32), dtype), mem.host((64, 3, 32, 32), dtype)
            src[...] = (np.arange(src.size) % 101 - 50).reshape(src.shape).astype(dtype)
            attrs = _call(rt.cudaPointerGetAttributes(src.ctypes.data), "cudaPointerGetAttributes")
            check(attrs.type == rt.cudaMemoryType.cudaMemoryTypeHost, f"{np.dtype(dtype)} host buffer not "
                                                                        f"page-locked: {attrs.type}")
            dev = mem.device(src.nbytes)
            mem.to_device(dev, src)
            mem.to_host(dst, dev)
            mem.synchronize()
            check(np.array_equal(src, dst), f"{np.dtype(dtype)} round trip changed the data")
        try:
            mem.device(1 << 52)
            raise Fail("a 4 PiB cudaMalloc did not fail")
        except EdgekitError as exc:
            check("cudaErrorMemoryAllocation (2)" in str(exc), f"the CUDA error is not named: {exc}")
        nbytes = 64 << 20
        a, b = mem.device(nbytes), mem.device(nbytes)
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        copy = lambda: _call(rt.cudaMemcpyAsync(b, a, nbytes, kind, mem.stream), "cudaMemcpyAsync")  # noqa: E731
        for _ in range(3):
            copy()
        t0 = time.perf_counter()
        times = mem.event_intervals(copy, 50)
        wall_ms = (time.perf_counter() - t0) * 1e3
        floor_ms = 2 * nbytes / 10e12 * 1e3  # read and write every byte at 10 TB/s, above any GPU's bandwidth
        check(min(times) > floor_ms, f"a 64 MiB device copy timed {min(times):.4f} ms, under its floor "
                                     f"{floor_ms:.4f} ms: the events do not bracket the work")
        check(sum(times) <= wall_ms * 1.05, f"device intervals sum to {sum(times):.3f} ms, more than the "
                                            f"{wall_ms:.3f} ms the host waited")
        src, dst = mem.host((1024,), np.float32), mem.host((1024,), np.float32)
        src[:] = np.arange(1024)
        dev = mem.device(src.nbytes)
        graph = mem.capture(lambda: mem.to_device(dev, src))
        src[:] = -src  # a graph's copy reads the page-locked buffer when it runs, not when it was captured
        graph()
        mem.to_host(dst, dev)
        mem.synchronize()
        check(np.array_equal(dst, src), "the CUDA graph's replayed copy did not move the current data")
        try:
            mem.capture(mem.synchronize)
            raise Fail("a capture that synchronizes its stream was accepted")
        except EdgekitError as exc:
            check("cudaErrorStreamCaptureUnsupported" in str(exc), f"capture refusal not named: {exc}")
        report["figures"] = {"d2d_64MiB_ms_median": float(np.median(times)), "d2d_floor_ms": floor_ms}
    finally:
        mem.close()


def _memory_round_trip(mem, report: dict) -> None:
    src, dst = mem.host((256, 10), np.float16), mem.host((256, 10), np.float16)
    src[...] = np.linspace(-4, 4, src.size).reshape(src.shape)
    dev = mem.device(src.nbytes)
    mem.to_device(dev, src)
    mem.to_host(dst, dev)
    mem.synchronize()
    check(np.array_equal(src, dst), f"{mem.name} float16 round trip changed the data")
    times = mem.event_intervals(lambda: mem.to_device(dev, src), 20)
    check(all(t > 0 for t in times), f"{mem.name} events gave a non-positive interval: {min(times)}")
    report["figures"] = {"h2d_5KiB_ms_median": float(np.median(times))}
    mem.close()


def part_torch_memory(report: dict) -> None:
    from edgekit.backends.tensorrt.othermem import TorchMemory

    _memory_round_trip(TorchMemory(), report)


def part_pycuda(report: dict) -> None:
    from edgekit.backends.tensorrt.othermem import PycudaMemory

    _memory_round_trip(PycudaMemory(), report)


def _model():
    """A small conv classifier (edgekit's doctor net) at 3x32x32: real kernels, seconds to time."""
    from edgekit.backends.tiny import tiny_torch, tiny_weights

    return tiny_torch(tiny_weights()).eval()


def part_torch_runner(report: dict) -> None:
    import torch

    from edgekit.backends.torch import TorchRunner
    from edgekit.measure.gpu import gpu_compute_ms
    from edgekit.measure.timing import TimingOptions, time_runner
    from edgekit.stats import agreement, within_tolerance

    x = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype(np.float32)
    model = _model()
    with TorchRunner(model) as cpu:
        ref = cpu.infer(x)
    figures = {}
    for label, fp16 in (("fp32", False), ("fp16_channels_last", True)):
        with TorchRunner(model, "cuda", fp16=fp16, channels_last=fp16, input_shape=(1, 3, 32, 32)) as r:
            got = np.concatenate([r.infer(x[i:i + 8]) for i in range(0, 64, 8)])
            check(all(t.is_pinned() for t in r._pins.values()) and len(r._pins) == 2,
                  f"{label}: the staging buffers are not page-locked")
            check(r.describe()["host_copies"] == "pinned", f"{label}: describe() does not say pinned")
            ag = agreement(got, ref)
            if fp16:
                check(ag["mean_cosine"] >= 0.999, f"fp16: mean cosine {ag['mean_cosine']:.5f} < 0.999 against the CPU")
            else:
                check(within_tolerance(ag["max_abs_diff"], ref, 1e-3, 1e-2) and ag["top1_agreement"] == 100.0,
                      f"fp32: max |diff| {ag['max_abs_diff']:.2e}, top-1 {ag['top1_agreement']:.1f}% against the CPU")
            timing = TimingOptions(warmup=10, repeats=50)
            e2e = time_runner(r, x[:8], timing)["median_ms"]
            compute, method = gpu_compute_ms(r, x, 8, timing)
            check(0 < np.median(compute) <= e2e * 1.05, f"{label}: GPU compute {np.median(compute):.3f} ms above "
                                                        f"its end-to-end {e2e:.3f} ms")
            figures[label] = {"e2e_b8_ms": e2e, "compute_b8_ms": float(np.median(compute)), "method": method,
                              "max_abs_diff": ag["max_abs_diff"], "mean_cosine": ag["mean_cosine"]}
    check(next(model.parameters()).device.type == "cpu", "the runner moved the caller's model")
    report["figures"] = {**figures, "torch": torch.__version__}


def part_side_by_side(report: dict) -> None:
    from types import SimpleNamespace

    from edgekit.measure.gpu import relative_to, torch_cuda_rows
    from edgekit.measure.timing import TimingOptions

    notes: list[str] = []
    x = np.random.default_rng(1).standard_normal((16, 3, 32, 32)).astype(np.float32)
    src = SimpleNamespace(torch_model=_model(), input_shape=(1, 3, 32, 32))
    rows = torch_cuda_rows(src, None, x, 8, TimingOptions(warmup=5, repeats=30), None, notes)
    check(notes == [], f"notes: {notes}")
    check([(r["runtime"], r["batch"]) for r in rows] == [("torch fp32", 1), ("torch fp32", 8),
                                                         ("torch fp16 channels_last", 1),
                                                         ("torch fp16 channels_last", 8)], f"rows: {rows}")
    for r in rows:
        check(r["host_copies"] == "pinned" and r["e2e_median_ms"] > 0 and 0 < r["compute_median_ms"],
              f"row {r['runtime']} b{r['batch']}: {r}")
    report["figures"] = {"rows": relative_to(rows, "torch fp32")}


def part_doctor(report: dict) -> None:
    import torch

    from edgekit.backends.tensorrt.cudamem import probe_devices
    from edgekit.pipeline.doctor import gpu_facts, jetson_facts, round_trip, versions

    probes = probe_devices()
    check(probes.get("cuda-python", (0, None))[0] >= 1 and probes.get("torch", (0, None))[0] >= 1,
          f"a CUDA library sees no GPU: {probes}")
    facts, v = gpu_facts(), versions()
    cc = torch.cuda.get_device_capability(0)
    check(facts["gpu"] == torch.cuda.get_device_name(0), f"doctor's GPU {facts['gpu']!r} is not torch's")
    check(facts["compute_capability"] == f"{cc[0]}.{cc[1]}", f"compute capability {facts['compute_capability']}")
    for key in ("cuda runtime", "cuda driver"):
        check(v[key][0].isdigit(), f"{key}: {v[key]}")
    check(jetson_facts()["l4t"].startswith("n/a (not a Jetson"), "this GPU machine read as a Jetson")
    figures = {"gpu": facts, "versions": {k: v[k] for k in ("cuda runtime", "cuda driver", "cuda-python", "torch")}}
    try:
        import onnx  # noqa: F401  round_trip exports the tiny net to ONNX first
    except ImportError as exc:
        figures["round_trip"] = f"not run: {exc}"
    else:
        rows = [r for r in round_trip(["torch"]) if r["device"] == "cuda"]
        check(len(rows) == 1 and rows[0]["verdict"] == "pass", f"doctor's torch-on-CUDA round trip: {rows}")
        figures["round_trip"] = rows[0]
    report["figures"] = figures


# (name, part, the module it needs, optional: a machine without the module skips it without failing the check)
PARTS = [("cuda-python", part_cuda_python, "cuda.bindings", False), ("torch-memory", part_torch_memory, "torch", False),
         ("pycuda", part_pycuda, "pycuda", True), ("torch-runner", part_torch_runner, "torch", False),
         ("side-by-side", part_side_by_side, "torch", False), ("doctor", part_doctor, "torch", False)]


def run(out: str) -> int:
    from edgekit._optional import available

    try:
        import torch

        gpu = torch.cuda.is_available() and torch.cuda.device_count() > 0
        why = None if gpu else f"torch {torch.__version__} sees no CUDA GPU"
    except ImportError as exc:
        gpu, why = False, f"torch: {exc}"
    results = []
    for name, fn, needs, optional in PARTS:
        rep: dict = {"part": name, "optional": optional}
        if not available(needs):
            rep.update(status="SKIP", detail=f"{needs} is not installed here")
        elif not gpu:
            rep.update(status="SKIP", detail=f"no GPU: {why}")
        else:
            t0 = time.perf_counter()
            try:
                fn(rep)
                rep["status"] = "PASS"
            except Fail as exc:
                rep.update(status="FAIL", detail=str(exc))
            except Exception as exc:  # a crash is a failure of the part, with where it happened
                rep.update(status="FAIL", detail=f"{type(exc).__name__}: {exc}",
                           where=traceback.format_exc(limit=-3).strip().splitlines())
            rep["seconds"] = round(time.perf_counter() - t0, 2)
        results.append(rep)
        print(f"{rep['status']:4}  {name:13} {rep.get('detail', '')}", flush=True)
    doc = {"python": platform.python_version(), "machine": platform.machine(), "parts": results,
           "needs_tensorrt": NEEDS_TENSORRT}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print(f"wrote {out}\nstill needs TensorRT itself:\n  - " + "\n  - ".join(NEEDS_TENSORRT))
    if any(r["status"] == "FAIL" for r in results):
        return 1
    return 2 if any(r["status"] == "SKIP" and not r["optional"] for r in results) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check.json", help="the JSON to write")
    return run(ap.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
