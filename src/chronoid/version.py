"""The installed package's version, one place for ``--version``, HELLO, INFO and metrics."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

__all__ = ["package_version"]


@functools.cache
def package_version() -> str:
    """chronoid's version as installed (``pyproject.toml``), or ``unknown`` when run from a
    source tree that was never installed."""
    try:
        return version("chronoid")
    except PackageNotFoundError:
        return "unknown"
