"""`edgekit doctor`: what is installed, which GPU is here, and a round trip through every backend that claims to
work. The first thing to run on a new machine or a Jetson.

Every read is guarded: what is absent reads "n/a (why)". Each backend that imports exports (or reads) a tiny
model, builds or compiles it, infers, and is compared with PyTorch (or, on a board without torch, with
onnxruntime on the CPU); a row says pass or fail and, on failure, the fix.
"""

from __future__ import annotations

import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .._optional import try_import
from ..backends import registry
from ..backends.base import RunnerRequest
from ..backends.tiny import tiny_onnx, tiny_torch, tiny_weights
from ..errors import EdgekitError, first_line

BACKENDS = registry.names()
# fp32 everywhere; GPUs may run convolutions in TF32 (TensorRT's default on Ampere+), hence the wider bound
TOLERANCE = {"cpu": (1e-4, 1e-3), "gpu": (1e-3, 1e-2)}  # atol, rtol of max|reference|


class BackendUnavailableError(EdgekitError):
    """A backend named with --backend cannot run here."""

    exit_code = 1


def _na(why: str) -> str:
    return f"n/a ({why})"


def _pkg_version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return _na("not installed")


def _cuda_version(code: int) -> str:
    return f"{code // 1000}.{code % 1000 // 10}"


def versions() -> dict[str, str]:
    """Python and every library edgekit can use, with the CUDA runtime and driver cuda-python reports."""
    out = {"python": platform.python_version(), "edgekit": _pkg_version("edgekit")}
    torch, why = try_import("torch")
    out["torch"] = (f"{torch.__version__} (CUDA {torch.version.cuda or 'none: CPU build'})" if torch else
                    _na(why))
    ort, why = try_import("onnxruntime")
    out["onnxruntime"] = ort.__version__ if ort else _na(why)
    out["onnxruntime providers"] = ", ".join(ort.get_available_providers()) if ort else _na(why)
    ov, why = try_import("openvino")
    out["openvino"] = ov.get_version() if ov else _na(why)
    trt, why = try_import("tensorrt")
    out["tensorrt"] = trt.__version__ if trt else _na(why)
    out["cuda-python"] = _pkg_version("cuda-bindings") if _pkg_version("cuda-python").startswith("n/a") \
        else _pkg_version("cuda-python")
    out["pycuda"] = _pkg_version("pycuda")
    for pkg in ("ai-edge-litert", "litert-torch", "executorch", "ncnn", "pnnx", "coremltools"):  # --format's tools
        out[pkg] = _pkg_version(pkg)
    out.update(cuda_versions())
    return out


def _cudart_module():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+), else the older ``cuda.cudart``."""
    rt, why = try_import("cuda.bindings.runtime")
    if rt is None:
        old, _ = try_import("cuda.cudart")
        if old is not None:
            return old, None
    return rt, why


def cuda_versions() -> dict[str, str]:
    """The CUDA runtime and driver versions cuda-python reports, each "n/a (why)" when it cannot say."""
    rt, why = _cudart_module()
    if rt is None:
        return {"cuda runtime": _na(f"cuda-python: {why}"), "cuda driver": _na(f"cuda-python: {why}")}
    out = {}
    for key, call, absent in (("cuda runtime", "cudaRuntimeGetVersion", "the CUDA runtime did not answer"),
                              ("cuda driver", "cudaDriverGetVersion", "no NVIDIA driver: libcuda is not loaded")):
        try:
            err, value = getattr(rt, call)()
        except Exception as exc:  # a binding that raises instead of returning (err, value): say what it raised
            out[key] = _na(f"{call} raised {first_line(exc, 100)}")
            continue
        out[key] = (_cuda_version(value) if int(err) == 0 and value else
                    _na(getattr(err, "name", str(err)) if int(err) != 0 else absent))
    return out


def gpu_facts() -> dict:
    """Devices each CUDA library counts, and device 0's name and compute capability when there is one."""
    from ..backends.tensorrt.cudamem import no_device_reason, probe_devices

    probes = probe_devices()
    facts = {"libraries": {lib: (n if n else _na(why)) for lib, (n, why) in probes.items()}}
    why = no_device_reason(probes)
    if why is not None:
        return {**facts, "gpu": _na(why), "compute_capability": _na("no GPU")}
    from ..backends.tensorrt.build import gpu_identity

    try:
        name, cc = gpu_identity()
    except Exception as exc:  # a library that counts a device yet cannot describe it: said, not a crash
        why = first_line(exc, 160)
        return {**facts, "gpu": _na(why), "compute_capability": _na(why)}
    return {**facts, "gpu": name, "compute_capability": f"{cc[0]}.{cc[1]}"}


def _command(cmd: list[str]) -> tuple[str | None, str | None]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{cmd[0]}: {first_line(exc, 80)}"
    if r.returncode != 0:
        return None, f"{' '.join(cmd)} exited {r.returncode}: {first_line(Exception(r.stderr or r.stdout), 80)}"
    return r.stdout.strip(), None


def clocks_locked(show: str) -> bool:
    """jetson_clocks --show: locked clocks show the GPU's current, min and max frequency equal."""
    import re

    m = re.search(r"GPU MinFreq=(\d+) MaxFreq=(\d+) CurrentFreq=(\d+)", show)
    return bool(m) and len(set(m.groups())) == 1


def jetson_facts(root: Path = Path("/")) -> dict:
    """L4T and JetPack release, power mode, locked clocks; on any other machine "n/a" with why."""
    rel = root / "etc/nv_tegra_release"
    if not rel.exists():
        why = f"not a Jetson: {rel} is absent"
        return {k: _na(why) for k in ("l4t", "jetpack", "nvpmodel", "clocks_locked")}
    facts = {"l4t": rel.read_text().splitlines()[0].strip()}
    out, why = _command(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    facts["jetpack"] = out or _na(why or "nvidia-jetpack is not installed")
    out, why = _command(["nvpmodel", "-q"])
    facts["nvpmodel"] = " / ".join(out.splitlines()) if out else _na(why)
    out, why = _command(["jetson_clocks", "--show"])
    facts["clocks_locked"] = ("yes" if clocks_locked(out) else "no: run sudo jetson_clocks before timing") if out \
        else _na(why)
    return facts


def _runners(backend: str, onnx_path: Path, work: Path, torch_model):
    """(device, runner factory) pairs for a backend; raises with the reason when it cannot run here."""
    from ..formats import registry as formats

    devices = registry.devices_here(backend)
    inputs = registry.get(backend).inputs
    fmt = None if {"onnx", "torch"} & set(inputs) else next((f for f in inputs if f in formats.names()), None)
    path = onnx_path
    if fmt is not None:  # a runtime of a mobile format only: the tiny model converted by the format's converter
        path = work / formats.file_name(fmt, "fp32")
        formats.convert(fmt, formats.ConvertSource(torch_model, onnx_path, (1, 3, 32, 32)), path)

    def request(device: str) -> RunnerRequest:
        return RunnerRequest(path, torch_model, device, threads=1, input_shape=(1, 3, 32, 32), work_dir=work)

    return [(d, lambda d=d: registry.open_runner(backend, request(d))) for d in devices]


def _row(backend, device, verdict, detail, fix="", **numbers) -> dict:
    return {"backend": backend, "device": device, "verdict": verdict, **numbers, "detail": detail, "fix": fix}


def round_trip(backends=BACKENDS, n: int = 8) -> list[dict]:
    """Export (or write) a tiny model, run it through each backend that imports, compare with the reference."""
    from ..stats import agreement, within_tolerance

    weights = tiny_weights()
    x = np.random.default_rng(1).standard_normal((n, 3, 32, 32)).astype(np.float32)
    torch_mod, torch_why = try_import("torch")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-doctor-") as tmp:
        work = Path(tmp)
        model = None
        if torch_mod is not None:
            from ..graph.export import onnx_from_torch

            model = tiny_torch(weights)
            with torch_mod.no_grad():
                ref = model(torch_mod.from_numpy(x)).numpy()
            onnx_path = work / "tiny.onnx"
            onnx_from_torch(model, (1, 3, 32, 32), onnx_path)
            reference = "PyTorch eager, CPU"
        else:
            onnx_path = tiny_onnx(weights, work / "tiny.onnx")
            with registry.open_runner("onnxruntime", RunnerRequest(onnx_path, threads=1)) as r:
                ref = np.concatenate([r.infer(x[i:i + 1]) for i in range(n)])
            reference = f"onnxruntime CPU (no torch here: {torch_why})"
        for backend in backends:
            try:
                pairs = _runners(backend, onnx_path, work, model)
            except EdgekitError as exc:  # not installed / no GPU: a backend that does not claim to be here
                rows.append(_row(backend, "-", "n/a", str(exc), registry.get(backend).fix))
                continue
            for device, make in pairs:
                t0 = time.perf_counter()
                try:
                    with make() as r:
                        got = np.concatenate([r.infer(x[i:i + 1]) for i in range(n)])
                except Exception as exc:  # a backend that claims to work and does not: its reason is the finding
                    rows.append(_row(backend, device, "fail", first_line(exc, 300), registry.get(backend).fix))
                    continue
                ag = agreement(got, ref)
                atol, rtol = TOLERANCE["cpu" if device == "cpu" else "gpu"]
                ok = within_tolerance(ag["max_abs_diff"], ref, atol, rtol) and ag["top1_agreement"] == 100.0
                rows.append(_row(backend, device, "pass" if ok else "fail",
                                 f"vs {reference}, {n} inputs, bound {atol:g} + {rtol:g}*max|ref|",
                                 "" if ok else "outputs disagree with the reference: report it with this output",
                                 max_abs_diff=ag["max_abs_diff"], top1_agreement=ag["top1_agreement"],
                                 seconds=round(time.perf_counter() - t0, 2)))
    return rows


def diagnose(backends=BACKENDS) -> dict:
    """Everything doctor reports, as one JSON-ready document."""
    for b in backends:
        registry.get(b)  # an unknown name is refused with the choices
    return {"versions": versions(), "gpu": gpu_facts(), "jetson": jetson_facts(), "round_trip": round_trip(backends)}


def unavailable(doc: dict, named: tuple[str, ...]) -> list[str]:
    """The backends named with --backend that have no passing row, each with its reason."""
    out = []
    for b in named:
        rows = [r for r in doc["round_trip"] if r["backend"] == b]
        if not any(r["verdict"] == "pass" for r in rows):
            out.append(f"{b}: " + "; ".join(r["detail"] for r in rows if r["verdict"] != "pass"))
    return out
