"""ExecuTorch: runs a .pte file with ``executorch.runtime`` (its XNNPACK delegate on the CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import EdgekitError, first_line
from .base import BackendSpec, Runner, RunnerRequest

SPEC = BackendSpec(
    "executorch", inputs=("pte",), devices=("cpu",), precisions=("fp32", "int8"), suffixes=(".pte",),
    requires=("executorch",), extra="executorch", fix="pip install executorch (edgekit's [executorch] extra)",
    wrong_input="the executorch backend runs .pte files, not {model!r}: run `edgekit export {model} --format pte` "
                "first")


class ExecuTorchRunner(Runner):
    name = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.threads = Path(path), threads
        self.method = None

    def activate_impl(self) -> None:
        rt = require("executorch.runtime", "the executorch backend")
        if self.threads:
            from executorch.extension.pybindings import portable_lib

            portable_lib._unsafe_reset_threadpool(int(self.threads))  # XNNPACK's pool; the runtime has no option
        try:
            self.program = rt.Runtime.get().load_program(str(self.path))
            self.method = self.program.load_method("forward")
        except Exception as exc:
            raise EdgekitError(f"ExecuTorch cannot load {self.path} ({first_line(exc, 160)}): re-export it with "
                               "`edgekit export --format pte`") from None
        self.input_shape = [int(d) for d in self.method.metadata.input_tensor_meta(0).sizes()]

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        out = self.method.execute([torch.from_numpy(np.ascontiguousarray(x))])[0]
        return out.numpy().copy()

    def deactivate_impl(self) -> None:
        self.method = self.program = None

    def describe(self) -> dict:
        from importlib.metadata import version

        return {"backend": self.name, "device": self.device, "threads": self.threads or "default",
                "executorch": version("executorch"), "delegate": "XNNPACK"}


def open(request: RunnerRequest) -> ExecuTorchRunner:
    return ExecuTorchRunner(request.path, request.threads)
