"""TensorRT: build options, the build, the runner, CUDA memory. TensorRT itself is imported lazily.

As a backend (``SPEC``, ``open``) it runs an ONNX file: ``open`` builds the engine for this GPU first.
"""

from __future__ import annotations

from pathlib import Path

from ..._optional import hint
from ...errors import EdgekitError, MissingDependencyError
from ..base import BackendSpec, Runner, RunnerRequest


def _ready() -> None:
    """TensorRT and a GPU, or the one-line reason; without TensorRT, also why no GPU could be used."""
    from .cudamem import no_device_reason, probe_devices
    from .options import require_gpu

    try:
        require_gpu()
    except EdgekitError as exc:
        no_gpu = no_device_reason(probe_devices())
        more = f"; and no GPU here either ({no_gpu})" if no_gpu and "GPU is reachable" not in str(exc) else ""
        raise MissingDependencyError(f"{exc}{more}") from None


# request.options["batch_profile"]: (min, opt, max) batch of a dynamic-batch ONNX (not tuned by --optimize)
SPEC = BackendSpec(
    "tensorrt", inputs=("onnx",), devices=("cuda",), precisions=("fp32", "fp16", "int8"),
    suffixes=(".engine", ".plan"), requires=("tensorrt",), extra="tensorrt",
    fix=hint("tensorrt"),
    wrong_input="the tensorrt backend builds its engine from an ONNX file, not {model!r}: run `edgekit export "
                "{model}` first",
    check=_ready)


def open(request: RunnerRequest) -> Runner:
    """Build an engine from ``request.path`` for this GPU (INT8 for a Q/DQ graph), then its runner.

    A dynamic batch gets the profile ``request.options["batch_profile"]`` (min, opt, max), or (1, 1, 1) when the
    caller names none: an engine takes no batch it was not built for, and the runner refuses one outside its
    profile (a fixed batch ignores the option: the engine takes the file's batch). The engine goes to
    ``request.work_dir``; without one, to a temporary folder (never beside the user's ONNX, where it could replace
    their engine) that the runner removes when it is done with it, and the user's engine cache keeps the build.
    """
    import shutil
    import tempfile
    import weakref

    from .build import engine_from_onnx
    from .onnx_rules import graph_facts
    from .options import BuildOptions
    from .runner import TensorRTRunner

    facts = graph_facts(request.path)
    profile = request.options.get("batch_profile")
    dynamic = facts.input_shape[0] is None
    opts = BuildOptions(precision="int8" if facts.qdq_nodes else facts.precision,
                        dynamic_batch=tuple(profile or (1, 1, 1)) if dynamic else None)
    work = request.work_dir
    cache = None if work is not None else Path.home() / ".cache" / "edgekit" / "engines"
    folder = Path(work or tempfile.mkdtemp(prefix="edgekit-engine-"))
    engine = folder / (Path(request.path).stem + ".engine")
    try:
        engine_from_onnx(request.path, engine, opts, cache_dir=cache)
    except BaseException:
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    runner = TensorRTRunner(engine)
    if work is None:  # removed when the runner is deactivated, or collected, or at exit
        runner.cleanup = weakref.finalize(runner, shutil.rmtree, folder, True)
    return runner
