#!/usr/bin/env python3
"""Fill the README's generated blocks, so its tables never come from hand edits.

    .venv/bin/python scripts/update_readme.py [--check] [--only variants,bench:ids,...]

A block is the text between ``<!-- BEGIN generated:NAME -->`` and
``<!-- END generated:NAME -->`` in README.md. Blocks it knows:

* ``variants``: the output of ``chronoid variants --markdown``.
* ``bench:TOPIC``: the contents of ``benchmarks/results/TOPIC.md``, written by
  ``benchmarks/bench_TOPIC.py``; left as it is while that file does not exist.
* ``capacity:budget``: the output of ``chronoid capacity --budget-table``.
* ``capacity:example``: ``chronoid capacity --variant chrono64s --ids-per-second 1000`` and
  its output, as a console block.

Without ``--readme`` it fills README.md and docs/modes.md. An unknown NAME is an error.
``--check`` changes nothing and exits 1 if a block differs
from what would be generated (the test suite checks the variants block this way; benchmark
figures vary from run to run, so they are checked only when asked for).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FILES = (README, ROOT / "docs" / "modes.md")
"""The files filled when no ``--readme`` is given."""
RESULTS = ROOT / "benchmarks" / "results"
CAPACITY_EXAMPLE = ("--variant", "chrono64s", "--ids-per-second", "1000")
"""The arguments of the ``chronoid capacity`` run the docs quote."""

_BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN generated:(?P<name>[\w:.-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END generated:(?P=name) -->)",
    re.DOTALL,
)


class ReadmeError(Exception):
    """A block the script cannot fill (unknown name, failing generator)."""


def chronoid_output(*args: str) -> str:
    """What ``chronoid ARGS`` prints, run with this interpreter (the CLI is the source)."""
    proc = subprocess.run(
        [sys.executable, "-m", "chronoid", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise ReadmeError(f"`chronoid {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def variants_markdown() -> str:
    """``chronoid variants --markdown``."""
    return chronoid_output("variants", "--markdown")


def generate(name: str) -> str | None:
    """The body of block ``name``, or None to leave the block as it is."""
    if name == "variants":
        return variants_markdown()
    if name == "capacity:budget":
        return chronoid_output("capacity", "--budget-table")
    if name == "capacity:example":
        output = chronoid_output("capacity", *CAPACITY_EXAMPLE).rstrip("\n")
        return f"```console\n$ chronoid capacity {' '.join(CAPACITY_EXAMPLE)}\n{output}\n```\n"
    if name.startswith("bench:"):
        path = RESULTS / f"{name.removeprefix('bench:')}.md"
        return path.read_text() if path.exists() else None
    raise ReadmeError(
        f"unknown generated block {name!r}: expected 'variants', 'capacity:budget', "
        "'capacity:example' or 'bench:TOPIC'"
    )


def _normalise(body: str) -> str:
    return body.strip("\n") + "\n"


def render(text: str, only: set[str] | None = None) -> tuple[str, list[str]]:
    """``text`` with its blocks regenerated, and the names of the blocks that changed."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if only is not None and name not in only:
            return match[0]
        body = generate(name)
        if body is None:
            return match[0]
        body = _normalise(body)
        if body != match["body"]:
            changed.append(name)
        return match["begin"] + body + match["end"]

    return _BLOCK.sub(replace, text), changed


def block_names(text: str) -> list[str]:
    """Names of the generated blocks in ``text``, in order."""
    return [m["name"] for m in _BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill the README's generated blocks.")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a block is out of date"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated block names, e.g. variants (default: all)"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        action="append",
        help="file to update (repeatable; default: README.md and docs/modes.md)",
    )
    args = parser.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()} or None
    paths = args.readme or list(FILES)
    if only is not None:
        found = set().union(*(block_names(p.read_text()) for p in paths))
        missing = only - found
        if missing:
            print(f"update_readme: no block named {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    status = 0
    for path in paths:
        status = max(status, _update(path, only, check=args.check))
    return status


def _update(path: Path, only: set[str] | None, *, check: bool) -> int:
    """Fill or check the blocks of one file; 0 up to date or updated, 1 stale, 2 error."""
    text = path.read_text()
    try:
        new, changed = render(text, only)
    except ReadmeError as exc:
        print(f"update_readme: {exc}", file=sys.stderr)
        return 2
    if check:
        if changed:
            print(
                f"update_readme: {path.name} is out of date: {', '.join(changed)} "
                "(run scripts/update_readme.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    if changed:
        # Re-read just before writing: others edit other sections of the file meanwhile.
        current = path.read_text()
        if current != text:
            new, changed = render(current, only)
        path.write_text(new)
        print(f"update_readme: {path.name}: updated {', '.join(changed)}")
    else:
        print(f"update_readme: {path.name}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
