"""Writing results without ever leaving half a file or clobbering a user's folder."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import EdgekitError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def umask() -> int:
    """The process umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; a plain open() would follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _write_error(path: Path, exc: OSError) -> EdgekitError:
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EFBIG: "the file size limit was reached", errno.EROFS: "it is on a read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror)
    fix = "free space or choose another --out" if exc.errno in _DISK_FULL else \
        "choose another --out, in a folder you can write to"
    return EdgekitError(f"cannot write {path} ({what}): {fix}; nothing was kept")


def _disk_full(exc: BaseException | None) -> OSError | None:
    """The full-disk OSError behind ``exc``, even where a library re-raised it as its own error."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL + (errno.EROFS,):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an existing, non-empty output folder unless ``force`` (before any work is done)."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise EdgekitError(f"{parent} is a file, so {out} cannot be a folder: choose another --out")
            break
    if out.exists() and not out.is_dir():
        raise EdgekitError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise EdgekitError(f"{out} already exists: choose another --out or pass --force to replace it")


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` in one rename.

    On any failure (an error, Ctrl-C) the temporary folder is removed and ``out`` is untouched.
    """
    out = Path(out)
    check_out_dir(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; the folder we hand over follows the umask
    except OSError as exc:
        raise _write_error(out, exc) from None
    try:
        yield tmp
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = _disk_full(exc)
        if full is not None:
            raise _write_error(out, full) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists() and force:
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.rename(tmp, out)  # fails on a non-empty folder: one that another run finished meanwhile is kept
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise EdgekitError(f"{out} was written by another run while this one worked: that result is kept and "
                               "this one was not; choose another --out or pass --force") from None
        raise _write_error(out, exc) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
