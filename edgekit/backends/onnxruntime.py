"""ONNX Runtime: CPU, and the CUDA or TensorRT execution provider when the installed build has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EdgekitError, first_line
from .base import BackendSpec, Runner, RunnerRequest

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def available_devices() -> list[str]:
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [d for d, provs in _PROVIDERS.items() if provs[0] in have]


OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def session_from_onnx(path: str | Path, device: str = "cpu", threads: int | None = None,
                      allow_spinning: bool = True, optimization: str = "all", denormal_as_zero: bool = False,
                      profile_prefix: str | None = None):
    """An InferenceSession on ``device``; refuses (never silently downgrades) a provider the build lacks."""
    import onnxruntime as ort

    if device not in _PROVIDERS:
        raise EdgekitError(f"unknown onnxruntime device {device!r}: choose one of {', '.join(_PROVIDERS)}")
    wanted = _PROVIDERS[device][0]
    if wanted not in ort.get_available_providers():
        raise EdgekitError(f"this onnxruntime build has no {wanted} (has {', '.join(ort.get_available_providers())}):"
                           " install onnxruntime-gpu on an NVIDIA machine, or use --device cpu")
    if optimization not in OPTIMIZATION_LEVELS:
        raise EdgekitError(f"unknown graph optimization level {optimization!r}: choose one of "
                           f"{', '.join(OPTIMIZATION_LEVELS)}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not allow_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if denormal_as_zero:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=_PROVIDERS[device])
    except Exception as exc:
        raise EdgekitError(f"onnxruntime cannot load {path} ({first_line(exc, 160)}): "
                           "check the file with `python -m onnx.checker` or re-export it") from None
    used = sess.get_providers()[0]
    if used != wanted:  # onnxruntime falls back when a provider fails to start, and says so only in its log
        raise EdgekitError(f"onnxruntime started {path} on {used}, not {wanted} (the provider failed to start: "
                           "check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs, or use --device cpu)")
    return sess


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None,
                 allow_spinning: bool = True, optimization: str = "all", denormal_as_zero: bool = False) -> None:
        super().__init__()
        self.path, self.device, self.threads = Path(path), device, threads
        self.allow_spinning, self.optimization, self.denormal_as_zero = allow_spinning, optimization, denormal_as_zero
        self.session = None

    @classmethod
    def tuned(cls, path: str | Path, threads: int | None, options: dict) -> "OnnxRuntimeRunner":
        """A CPU runner with the options ``--optimize`` tried (see ``TUNABLE``); a bad key is refused."""
        bad = sorted(set(options) - set(TUNABLE))
        if bad:
            raise EdgekitError(f"unknown onnxruntime option {bad[0]!r}: choose from {', '.join(TUNABLE)}")
        return cls(path, "cpu", threads, **options)

    def activate_impl(self) -> None:
        self.session = session_from_onnx(self.path, self.device, self.threads, self.allow_spinning,
                                         self.optimization, self.denormal_as_zero)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else None for d in inp.shape]
        self.output_name = self.session.get_outputs()[0].name

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def deactivate_impl(self) -> None:
        self.session = None

    def describe(self) -> dict:
        import onnxruntime as ort

        provs = self.session.get_providers() if self.session else _PROVIDERS[self.device]
        return {"backend": self.name, "device": self.device, "providers": provs,
                "threads": self.threads or "default", "onnxruntime": ort.__version__,
                "graph_optimization": self.optimization, "intra_op_spinning": self.allow_spinning,
                "denormal_as_zero": self.denormal_as_zero}


# runtime options --optimize may try, as OnnxRuntimeRunner keyword arguments
TUNABLE = ("allow_spinning", "optimization", "denormal_as_zero")

SPEC = BackendSpec(
    "onnxruntime", inputs=("onnx", "ort"), devices=tuple(_PROVIDERS), precisions=("fp32", "fp16", "int8"),
    suffixes=(".onnx", ".ort"), tunable=TUNABLE, requires=("onnxruntime",),
    fix="pip install onnxruntime (onnxruntime-gpu for the CUDA/TensorRT providers)",
    wrong_input="the onnxruntime backend runs .onnx files, not {model!r}: run `edgekit export {model}` first, or "
                "pass --backend torch",
    probe=available_devices)


def open(request: RunnerRequest) -> OnnxRuntimeRunner:
    """A session on ``request.device``; the tuned options (``--optimize``'s choice) apply on the CPU."""
    if request.options and request.device == "cpu":
        return OnnxRuntimeRunner.tuned(request.path, request.threads, dict(request.options))
    return OnnxRuntimeRunner(request.path, request.device, request.threads)


def op_times(path: str | Path, x: np.ndarray, threads: int | None = None, runs: int = 20, warmup: int = 5) -> dict:
    """Mean milliseconds per run spent in each op type (onnxruntime's profiler, after its graph fusions).

    This is where the time goes: the kernels onnxruntime actually ran, e.g. QLinearConv, QLinearSigmoid.
    """
    import json
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        sess = session_from_onnx(path, "cpu", threads, profile_prefix=os.path.join(d, "prof"))
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(warmup):
            sess.run(None, feed)
        # the profile holds every run; warm-up runs are told apart by count, the last ``runs`` are kept
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_run: dict[str, list[float]] = {}
    kernels = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    for e in kernels:
        per_run.setdefault(e["args"]["op_name"], []).append(e["dur"] / 1e3)
    total_runs = warmup + runs
    out = {}
    for op, durs in per_run.items():
        per = len(durs) // total_runs or 1
        out[op] = sum(durs[-per * runs:]) / runs
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
