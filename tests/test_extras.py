"""require_extra: one line naming the extra, or the cause when the package is broken."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chronoid.errors import ChronoidError, MissingExtra
from chronoid.extras import require_extra


def test_present_module_passes() -> None:
    require_extra("redis", "x", "json", "os")


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(MissingExtra) as info:
        require_extra("redis", "a Redis node registry", "json", "chronoid_no_such_module")
    assert str(info.value) == (
        "a Redis node registry needs the 'redis' extra (chronoid_no_such_module is not "
        "installed): pip install 'chronoid[redis]'"
    )
    assert isinstance(info.value, ImportError) and isinstance(info.value, ChronoidError)
    assert info.value.name == "chronoid_no_such_module"


def test_broken_module_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "chronoid_broken_pkg.py").write_text(
        "raise ImportError('no pq wrapper available')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra, match=r"installed but fails to import \(no pq wrapper"):
        require_extra("postgres", "chronoid pg", "chronoid_broken_pkg")
    sys.modules.pop("chronoid_broken_pkg", None)
