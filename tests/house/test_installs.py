"""Installs that cannot reach the wrong package: the package index's "edgekit" is another project (a Cloudflare
Workers SDK), so no text a user reads may install edgekit by that name; edgekit's own wheel installs instead; and
the CI example is a valid GitHub Actions workflow that gates what a shared runner can measure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# `pip install` and, on the same line, edgekit by name: bare, quoted, or with extras; not a path, a wheel file or
# another package whose name starts with edgekit
BARE = re.compile(r"pip3?\s+install\b[^\n;&|`(]*?(?<![\w./@-])['\"]?edgekit(?:\[[^\]]*\])?['\"]?(?![\w./-])")


def _texts():
    """Every text a user reads: the READMEs and docs, recipes, and the string literals of the package (errors,
    hints, the bundle's README) and of the benchmarks."""
    for path in [*REPO.glob("*.md"), *REPO.glob("docs/**/*"), *REPO.glob("recipes/*"), *REPO.glob("calibration/*")]:
        if path.is_file():
            yield path, path.read_text(errors="replace")
    for path in [*REPO.glob("edgekit/**/*.py"), *REPO.glob("benchmarks/**/*.py"), *REPO.glob("tools/*.py")]:
        yield path, path.read_text()


def test_the_pattern_finds_a_bare_install():
    for bad in ("pip install edgekit", "pip install 'edgekit[tensorrt]'", "pip install --no-deps edgekit",
                "python -m pip install -U \"edgekit[lite]\" onnx", "pip3 install edgekit==0.1.0"):
        assert BARE.search(bad), bad
    for ok in ("pip install ci/wheels/edgekit-0.1.0-py3-none-any.whl", "pip install -e '.[dev]'",
               "pip install ./edgekit-0.1.0-py3-none-any.whl", "pip install edgekit-lite0", "pip install onnx",
               "pip install -e '.[dev]' && edgekit export efficientnet_lite0"):
        assert not BARE.search(ok), ok


def test_no_user_facing_text_installs_edgekit_by_name():
    found = [f"{p.relative_to(REPO)}: {m.group(0)}" for p, text in _texts() for m in BARE.finditer(text)]
    assert found == []


def test_edgekits_own_wheel_installs_and_runs(tmp_path):
    """The wheel a Jetson bundle carries, made from the running installation: pip installs it (no index asked),
    its RECORD holds every file, and the installed copy runs `edgekit --version` without the checkout."""
    from edgekit import __version__
    from edgekit.pipeline.wheel import own_wheel

    wheel = own_wheel(tmp_path / "w")
    assert wheel.name == f"edgekit-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgekit/cli/__init__.py" in names and "edgekit/assets/photos/coffee.jpg" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    record = zipfile.ZipFile(wheel).read(f"edgekit-{__version__}.dist-info/RECORD").decode()
    assert {ln.split(",")[0] for ln in record.splitlines()} == set(names)
    target = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                          str(target), str(wheel)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ran = subprocess.run([sys.executable, "-c", "import edgekit, sys; print(edgekit.__file__, edgekit.__version__); "
                          "sys.argv = ['edgekit', 'doctor', '--help']; from edgekit.cli import main; main()"],
                         capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target),
                                                                             "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    where, version = ran.stdout.split()[:2]
    assert where.startswith(str(target)) and version == __version__ and "Usage: edgekit doctor" in ran.stdout
    assert own_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()  # the same files, the same wheel


WORKFLOW = REPO / "docs" / "github-actions-model-gate.yml"


@pytest.mark.skipif(shutil.which("check-jsonschema") is None and not Path(sys.executable).with_name(
    "check-jsonschema").exists(), reason="check-jsonschema is not installed (pip install check-jsonschema)")
def test_the_ci_example_is_a_valid_workflow_that_cannot_flake(tmp_path):
    """Validated against the GitHub Actions workflow schema (SchemaStore's, vendored by check-jsonschema), which
    refuses a broken copy; it installs edgekit's own wheel, gates size and held-out accuracy, and leaves latency
    to `check`, which compares it only on the baseline's machine, with a tolerance a shared runner allows."""
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))

    def valid(path: Path) -> bool:
        out = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                             text=True)
        return out.returncode == 0

    assert valid(WORKFLOW)
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n"))
    assert not valid(broken)
    text = WORKFLOW.read_text()
    assert "pip install ci/wheels/edgekit-" in text and "--max-size-growth" in text and "--max-accuracy-drop" in text
    growth = float(re.search(r"--max-latency-growth (\d+)%", text).group(1))
    assert growth >= 20, "a shared runner's timings move by tens of percent on one CPU"
