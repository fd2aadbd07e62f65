"""LiteRT and ExecuTorch as peers in ``peers.py``: each runtime's FP32 file and its INT8 file made with the
runtime's documented defaults (litert-torch's PT2EQuantizer / ExecuTorch's XNNPACKQuantizer, symmetric per-channel
weights, calibrated on everyone's calibration images, no accuracy guard), converted with edgekit's own converters
(``edgekit.formats``) and judged like every other row. The files are batch 1, as a phone app runs them; a batch of
8 is timed as 8 calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mobile_engines(torch_model, calib: np.ndarray, threads: int, work: Path) -> dict:
    """name -> factory returning (callable, closer); a runtime that is not installed is a row saying so."""
    from edgekit._optional import available
    from edgekit.backends import registry
    from edgekit.backends.base import RunnerRequest
    from edgekit.formats import registry as formats
    from edgekit.formats.pt2e import Int8Spec

    work.mkdir(parents=True, exist_ok=True)
    shape = (1, *calib.shape[1:])
    out: dict = {}
    for fmt, label in (("tflite", "litert"), ("pte", "executorch")):
        spec = formats.get(fmt)
        if not all(available(m) for m in spec.requires):
            out[label] = f"skipped: {', '.join(spec.requires)} not installed (edgekit's [{spec.extra}] extra)"
            continue
        for precision in ("fp32", "int8"):
            path = work / formats.file_name(fmt, precision)

            def make(fmt=fmt, path=path, precision=precision, backend=spec.backend):
                if not path.exists():
                    formats.convert(fmt, formats.ConvertSource(torch_model, None, shape), path, precision,
                                    Int8Spec(calib) if precision == "int8" else None)
                r = registry.open_runner(backend, RunnerRequest(path, threads=threads)).activate()
                return (lambda x: np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])), r.deactivate
            make.path, make.backend, make.options = path, spec.backend, {}
            out[f"{label}-{precision}" + ("-default" if precision == "int8" else "")] = make
    return out
