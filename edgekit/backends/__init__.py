"""Runtimes, one module each, behind the small runner protocol of ``base``, found by name in ``registry``."""

from __future__ import annotations

from .base import BackendSpec, Runner, RunnerRequest
from .registry import get as get_spec

__all__ = ["BackendSpec", "Runner", "RunnerRequest", "get_spec"]
