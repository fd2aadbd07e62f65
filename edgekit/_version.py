"""The installed edgekit version, on the bottom floor so that any module can read it without a loop."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgekit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
