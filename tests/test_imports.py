"""Every module imports, and the CLI's help works, with no GPU library installed."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import edgekit


def test_every_module_imports_without_gpu_libraries():
    code = (
        "import sys, importlib, pkgutil\n"
        "sys.modules['tensorrt'] = None; sys.modules['pycuda'] = None; sys.modules['cuda'] = None\n"
        "import edgekit\n"
        "names = [m.name for m in pkgutil.walk_packages(edgekit.__path__, 'edgekit.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "[importlib.import_module(n) for n in names]\n"
        "heavy = [m for m in ('tensorrt', 'pycuda', 'torch') if sys.modules.get(m) is not None]\n"
        "print(len(names), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    n, heavy = out.split(" ", 1)
    assert int(n) >= 15 and heavy.strip() == "[]"  # not even torch is imported by importing edgekit


def test_help_of_every_command():
    for args in ([], ["export"], ["profile"], ["models"]):
        r = subprocess.run([sys.executable, "-m", "edgekit", *args, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "Usage" in r.stdout, r.stderr


def test_version_in_one_place():
    from importlib.metadata import version

    assert edgekit.__version__ == version("edgekit")
    assert [m.name for m in pkgutil.iter_modules(edgekit.__path__) if m.name == "__init__"] == []
