"""Every example marked ``<!-- tested -->`` in docs/integrations.md and in the README's
integrations section runs, as written, in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


_RUNNER = """
import json, sys, traceback
failures = []
for name, code in json.load(sys.stdin):
    try:
        exec(compile(code, name, "exec"), {"__name__": "__main__"})
    except BaseException:
        failures.append([name, traceback.format_exc()[-3000:]])
print(json.dumps(failures))
"""


def test_examples_run() -> None:
    # One interpreter runs every example, each in a fresh namespace: one start-up and one
    # import of pydantic/fastapi/sqlalchemy instead of one per example.
    import json

    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(EXAMPLES),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{name}:\n{trace}" for name, trace in failures)
