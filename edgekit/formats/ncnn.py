"""ncnn (.param + .bin) from the verified ONNX file with pnnx, Tencent's converter. pnnx's torch route traces with
the deprecated ``torch.jit.trace``; its ONNX route reads the file edgekit has already checked against torch.

FP32 and FP16 (fp16 weight storage and arithmetic where the device has it) only: ncnn's INT8 tools
(``ncnn2table``, ``ncnn2int8``) ship in neither the pip wheels nor Debian."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from .._optional import require
from ..errors import EdgekitError
from .registry import package_version


def ncnn_from_onnx(onnx_path: Path, path: Path, input_shape, fp16: bool = False) -> dict:
    """Write ``path`` (.param) and its ``.bin`` beside it; pnnx's side files stay in a temporary folder."""
    pnnx = require("pnnx", "the ncnn format")
    # absolute: pnnx runs in its own folder, where a path relative to ours (an `--out` given as out/x) reads nothing
    onnx_path, path = Path(onnx_path).resolve(), Path(path).resolve()
    shape = "[" + ",".join(str(int(d)) for d in input_shape) + "]"
    with tempfile.TemporaryDirectory(prefix=".pnnx-", dir=path.parent) as d:
        work = Path(d)
        src = _readable_by_pnnx(onnx_path, work / "model.onnx")
        param, binf = work / "out.ncnn.param", work / "out.ncnn.bin"
        cmd = [pnnx.EXEC_PATH, str(src), f"inputshape={shape}", f"fp16={int(fp16)}", f"ncnnparam={param}",
               f"ncnnbin={binf}", f"ncnnpy={work / 'x_ncnn.py'}", f"pnnxparam={work / 'x.pnnx.param'}",
               f"pnnxbin={work / 'x.pnnx.bin'}", f"pnnxpy={work / 'x_pnnx.py'}", f"pnnxonnx={work / 'x.pnnx.onnx'}"]
        r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not param.exists() or not binf.exists():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise EdgekitError(f"pnnx could not convert {onnx_path.name} to ncnn (exit {r.returncode}: "
                               f"{tail[0][:160]})")
        os.replace(binf, path.with_suffix(".bin"))
        os.replace(param, path)
    return {"converter": f"pnnx {package_version('pnnx')} (from ONNX)", "quantizer": None,
            "files": [path.name, path.with_suffix(".bin").name]}


PNNX_MAX_IR = 10  # pnnx 20261020 loads ONNX through its own onnxruntime 1.30, which crashes (SIGSEGV) on IR 14


def _readable_by_pnnx(onnx_path: Path, dest: Path) -> Path:
    """The ONNX file, or a copy stamped IR version 10 when it is newer and its opsets are ones IR 10 covers (up to
    21): the IR version numbers the container, not the ops, so the graph is the same."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    newer_ops = any(o.version > 21 for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if model.ir_version <= PNNX_MAX_IR or newer_ops:
        os.symlink(os.path.abspath(onnx_path), dest)
        return dest
    model = onnx.load(str(onnx_path))
    model.ir_version = PNNX_MAX_IR
    onnx.save(model, str(dest))
    return dest
