"""Every module imports, and the CLI's help works, with no GPU library installed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
    """pyproject.toml holds the version; the package reads it from the installed metadata, never repeats it."""
    from importlib.metadata import version

    assert edgekit.__version__ == version("edgekit")
    root = Path(edgekit.__file__).parent
    literal = re.compile(r"""__version__\s*=\s*["']\d+\.\d+|["']""" + re.escape(version("edgekit")) + """["']""")
    repeated = [str(p.relative_to(root)) for p in sorted(root.rglob("*.py")) if literal.search(p.read_text())]
    assert repeated == [], f"the version is written out in {repeated}: read it with importlib.metadata"
