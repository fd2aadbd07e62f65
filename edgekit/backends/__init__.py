"""Runtimes, one module each, behind the small runner protocol of ``base``."""

from __future__ import annotations

from .base import BACKENDS, BackendSpec, Runner, get_spec

__all__ = ["BACKENDS", "BackendSpec", "Runner", "get_spec"]
