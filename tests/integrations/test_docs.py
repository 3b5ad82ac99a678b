"""Every example marked ``<!-- tested -->`` in docs/integrations.md and in the README's
integrations section runs, as written, in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _examples(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- tested -->\n```python\n(.*?)```", text, re.S)
    return [(f"{path.name}#{i}", block) for i, block in enumerate(blocks)]


EXAMPLES = _examples(ROOT / "docs" / "integrations.md") + _examples(ROOT / "README.md")


def test_there_are_examples() -> None:
    names = [name for name, _ in EXAMPLES]
    assert sum(n.startswith("integrations.md") for n in names) >= 5
    assert sum(n.startswith("README.md") for n in names) >= 3


@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{name}:\n{proc.stderr[-3000:]}"
