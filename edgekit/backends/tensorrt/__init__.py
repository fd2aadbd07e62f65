"""TensorRT: build options, the build, the runner, CUDA memory. TensorRT itself is imported lazily.

As a backend (``SPEC``, ``open``) it runs an ONNX file: ``open`` builds the engine for this GPU first.
"""

from __future__ import annotations

from pathlib import Path

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


SPEC = BackendSpec(
    "tensorrt", inputs=("onnx",), devices=("cuda",), precisions=("fp32", "fp16", "int8"),
    suffixes=(".engine", ".plan"), requires=("tensorrt",), extra="tensorrt",
    fix="on a machine with an NVIDIA GPU and driver; see the README's TensorRT extras",
    wrong_input="the tensorrt backend builds its engine from an ONNX file, not {model!r}: run `edgekit export "
                "{model}` first",
    check=_ready)


def open(request: RunnerRequest) -> Runner:
    """Build an engine from ``request.path`` for this GPU (INT8 for a Q/DQ graph, a 1-8-32 batch profile for a
    dynamic batch), then its runner. The engine goes to ``request.work_dir`` (default: a fresh temporary folder,
    never beside the user's ONNX, where it could replace their engine, with the user's engine cache)."""
    import tempfile

    from .build import engine_from_onnx
    from .options import BuildOptions, graph_facts
    from .runner import TensorRTRunner

    facts = graph_facts(request.path)
    opts = BuildOptions(precision="int8" if facts.qdq_nodes else facts.precision,
                        dynamic_batch=(1, 8, 32) if facts.input_shape[0] is None else None)
    work = request.work_dir
    cache = None if work is not None else Path.home() / ".cache" / "edgekit" / "engines"
    engine = Path(work or tempfile.mkdtemp(prefix="edgekit-engine-")) / (Path(request.path).stem + ".engine")
    engine_from_onnx(request.path, engine, opts, cache_dir=cache)
    return TensorRTRunner(engine)
