"""Every module imports, and the CLI's help works, with no GPU library installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_nncf_imported_by_edgekit_sends_no_telemetry():
    """NNCF phones home from every process that imports it; edgekit imports it for the user, so it sets NNCF's
    own switch first (run outside pytest, which NNCF detects and stubs by itself)."""
    pytest.importorskip("nncf", reason="nncf is not installed (pip install 'edgekit[openvino]')")
    code = ("import os; os.environ.pop('NNCF_CI', None)\n"
            "from edgekit._optional import require\n"
            "require('nncf')\n"
            "from nncf.telemetry.wrapper import telemetry\n"
            "print(type(telemetry).__name__)")  # NNCFTelemetry sends; its stand-in does not
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "NNCF_CI"}).stdout
    assert out.strip().splitlines()[-1] != "NNCFTelemetry", out  # NNCF's stub (a MagicMock), not the sender
