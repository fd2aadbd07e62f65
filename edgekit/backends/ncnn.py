"""ncnn: runs a .param/.bin pair written by pnnx (input ``in0``, output ``out0``), batch 1, on the CPU.

FP32 files run with ncnn's fp16/bf16 storage and arithmetic off, so the check against torch is an FP32 check; the
``fp16`` option turns them on, as a phone would for an FP16 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import EdgekitError, first_line
from .base import BackendSpec, Runner, RunnerRequest

SPEC = BackendSpec(
    "ncnn", inputs=("ncnn",), devices=("cpu",), precisions=("fp32", "fp16"), suffixes=(".param", ".bin"),
    tunable=("fp16",), requires=("ncnn",), extra="ncnn", fix="pip install ncnn pnnx (edgekit's [ncnn] extra)",
    wrong_input="the ncnn backend runs .param files (with their .bin), not {model!r}: run `edgekit export {model} "
                "--format ncnn` first")
_HALF = ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed")


def _unknown_layers(ncnn, param: Path) -> list[str]:
    """Layer types in the .param file that this ncnn build does not have (pnnx writes an op it does not translate
    under its own name; ncnn then refuses the whole file)."""
    try:
        types = {line.split()[0] for line in param.read_text().splitlines()[2:] if line.split()}
    except OSError:
        return []
    return sorted(t for t in types if ncnn.layer_to_index(t) < 0)


def _input_channels(param: Path) -> int | None:
    """The channels the first convolution reads (its weight count over outputs x kernel): the .param file holds
    no input shape, and ncnn would read past a wrong one rather than refuse it."""
    for line in param.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) > 4 and parts[0] == "Convolution":
            kv = dict(p.split("=", 1) for p in parts[4:] if "=" in p)
            kw, kh = int(kv.get("1", 1)), int(kv.get("11", kv.get("1", 1)))
            return int(kv["6"]) // (int(kv["0"]) * kw * kh) if "6" in kv and "0" in kv else None
    return None


class NcnnRunner(Runner):
    name = "ncnn"

    def __init__(self, path: str | Path, threads: int | None = None, fp16: bool = False) -> None:
        super().__init__()
        self.path, self.threads, self.fp16 = Path(path), threads, bool(fp16)
        self.net = None

    def activate_impl(self) -> None:
        ncnn = require("ncnn", "the ncnn backend")
        net = ncnn.Net()
        net.opt.num_threads = int(self.threads or 1)
        for flag in _HALF:
            setattr(net.opt, flag, self.fp16 and "fp16" in flag)
        weights = self.path.with_suffix(".bin")
        unknown = _unknown_layers(ncnn, self.path)
        if unknown:
            raise EdgekitError(f"ncnn has no {', '.join(unknown)} layer, which {self.path.name} needs: the model's "
                               f"{unknown[0]} op cannot run on ncnn (use another format, or replace the op)")
        if net.load_param(str(self.path)) != 0 or not weights.exists() or net.load_model(str(weights)) != 0:
            raise EdgekitError(f"ncnn cannot load {self.path} with {weights.name} beside it: re-export them with "
                               "`edgekit export --format ncnn`")
        self.net, self.ncnn = net, ncnn
        self.in_name, self.out_name = net.input_names()[0], net.output_names()[0]
        self.input_shape = [1, _input_channels(self.path), None, None]  # any H x W: ncnn plans per input

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != 1:
            raise EdgekitError(f"ncnn: input shape {list(x.shape)} does not fit the model's batch 1")
        chw = np.ascontiguousarray(x[0], dtype=np.float32)  # ncnn.Mat borrows this buffer: keep it alive until
        with self.net.create_extractor() as ex:                # the extract (a temporary here read freed memory)
            ex.input(self.in_name, self.ncnn.Mat(chw))
            ret, out = ex.extract(self.out_name)
        if ret != 0:
            raise EdgekitError(f"ncnn: input shape {list(x.shape)} does not fit the model (extract returned {ret})")
        return np.array(out, dtype=np.float32).reshape(1, -1)

    def deactivate_impl(self) -> None:
        self.net = None

    def describe(self) -> dict:
        return {"backend": self.name, "device": self.device, "threads": self.threads or 1,
                "ncnn": require("ncnn").__version__, "fp16": self.fp16}


def open(request: RunnerRequest) -> NcnnRunner:
    bad = sorted(set(request.options) - set(SPEC.tunable))
    if bad:
        raise EdgekitError(f"unknown ncnn option {bad[0]!r}: choose from {', '.join(SPEC.tunable)}")
    try:
        return NcnnRunner(request.path, request.threads, **dict(request.options))
    except TypeError as exc:
        raise EdgekitError(f"ncnn: {first_line(exc)}") from None
