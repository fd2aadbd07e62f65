"""Reports: one JSON a machine reads, the same figures as a Markdown and an on-screen table."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

from .._version import __version__
from ..fsutil import atomic_write_text, write_json
from .schema import SCHEMA, Headline
from .table import to_markdown

_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "fma")


def cpu_facts() -> dict:
    from ..cpuinfo import cpu_info

    model, flags = cpu_info()
    return {"cpu": model, "arch": platform.machine(), "cores": os.cpu_count(),
            "isa": sorted(f for f in _ISA_FLAGS if f in flags)}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"edgekit": __version__, "python": platform.python_version()}
    for pkg in ("torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "numpy", "tensorrt"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def environment(threads=None) -> dict:
    env = cpu_facts()
    env.update(os=f"{platform.system()} {platform.release()}", host=platform.node(), threads=threads)
    env["versions"] = versions()
    return env


def new_report(command: str, **fields) -> dict:
    rep = {"schema": SCHEMA, "command": command,
           "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    rep.update(fields)
    rep["headline"] = Headline.of(rep).to_dict()  # what check and compare read (schema.py)
    return rep


def write(rep: dict, folder: Path) -> None:
    write_json(folder / "report.json", rep)
    atomic_write_text(folder / "report.md", to_markdown(rep))
