"""Where the project lives online: one home for the URLs the README and messages link to.

The README is read on package indexes, where a relative ``docs/x.md`` link leads nowhere, so
links into the documentation are absolute, built from :data:`REPOSITORY_URL` (the same URL as
``[project.urls]`` in ``pyproject.toml``; a test keeps the two equal).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DOCS_URL", "REPOSITORY_URL", "docs_link"]

REPOSITORY_URL = "https://github.com/chronoid/chronoid"
"""The source repository."""

DOCS_URL = f"{REPOSITORY_URL}/blob/main/docs"
"""The ``docs/`` directory of the main branch, as a reader outside the repository reaches it."""


def docs_link(target: Path, readme: Path) -> str:
    """A link from ``readme`` to ``target``: absolute when ``target`` is in the ``docs/``
    beside ``readme`` (the repository's own README), relative otherwise."""
    docs = readme.resolve().parent / "docs"
    resolved = target.resolve()
    if resolved.is_relative_to(docs):
        return f"{DOCS_URL}/{resolved.relative_to(docs).as_posix()}"
    return os.path.relpath(resolved, readme.resolve().parent)
