"""The README's generated variants table matches ``chronoid variants --markdown``.

Only the variants block is checked: benchmark figures change from run to run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "update_readme.py"


def test_readme_variants_block_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--only", "variants"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (
        "README.md's variants table is out of date; run "
        f".venv/bin/python scripts/update_readme.py\n{proc.stdout}{proc.stderr}"
    )


def test_check_detects_a_stale_block(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(
        "# x\n\n<!-- BEGIN generated:variants -->\n| stale |\n<!-- END generated:variants -->\n"
    )
    cmd = [sys.executable, str(SCRIPT), "--readme", str(stale), "--only", "variants"]
    check = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 1
    assert "variants" in check.stderr
    assert stale.read_text().count("| stale |") == 1  # --check changes nothing
    update = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert update.returncode == 0, update.stderr
    text = stale.read_text()
    assert "| stale |" not in text
    assert "| `snowflake` | 64 | yes | 41/10/12 |" in text
    assert text.startswith("# x\n\n<!-- BEGIN generated:variants -->\n| variant |")
    assert subprocess.run([*cmd, "--check"], capture_output=True, check=False).returncode == 0
