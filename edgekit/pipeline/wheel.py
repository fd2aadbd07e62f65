"""edgekit's own wheel, built from the running installation: what a board installs, so that it never asks the
package index for "edgekit" (which the index gives to another project).

The wheel is made from the files Python imports (the package folder, whether installed from a wheel or editable
from a checkout) and the installed distribution's metadata: a pure-Python wheel (``py3-none-any``) with its
RECORD of sha256 digests, installable with ``pip install --no-deps edgekit-<version>-py3-none-any.whl``.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

SKIP = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _package_files(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and not (SKIP & set(path.parts)) and path.suffix not in SKIP_SUFFIXES:
            yield path


def own_wheel(dest: Path) -> Path:
    """Write edgekit's wheel into ``dest`` (a folder); returns its path."""
    import importlib.metadata as md
    import io

    from .. import __version__
    from ..errors import EdgekitError
    from ..fsutil import atomic_write_bytes

    try:
        dist = md.distribution("edgekit")  # a checkout's edgekit.egg-info holds the same as PKG-INFO
        meta = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    except md.PackageNotFoundError:
        meta = None
    if not meta:
        raise EdgekitError("edgekit is not installed as a distribution, so its wheel cannot be made: install it "
                           "from your checkout with pip install -e . and export again")
    pkg = Path(__file__).resolve().parents[1]  # the edgekit package that is running
    name = f"edgekit-{__version__}"
    info = f"{name}.dist-info"
    entries: list[tuple[str, bytes]] = [(f"edgekit/{p.relative_to(pkg).as_posix()}", p.read_bytes())
                                        for p in _package_files(pkg)]
    entries.append((f"{info}/METADATA", meta.encode()))
    entries.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: edgekit\nRoot-Is-Purelib: true\n"
                                     b"Tag: py3-none-any\n"))
    entries.append((f"{info}/entry_points.txt", b"[console_scripts]\nedgekit = edgekit.cli:main\n"))
    record = "".join(f"{n},{_digest(d)},{len(d)}\n" for n, d in entries) + f"{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries:
            zi = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: the same files give the same wheel
            zi.external_attr = 0o644 << 16
            z.writestr(zi, d, zipfile.ZIP_DEFLATED)
    out = Path(dest) / f"{name}-py3-none-any.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    return out
