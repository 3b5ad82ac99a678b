"""The package as a user gets it: a wheel in a fresh virtual environment, without any extra.

``pip install chronoid`` brings no dependency on Linux, so the wheel is installed with
``--no-deps`` into a venv without pip (the dev environment's pip drives it with ``--python``):
nothing from the dev environment leaks in, and no index is asked. There, every command's
``--help`` must work, the README's quick start must run, and every feature that needs an extra
must say which one in one line instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronoid.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, check=False, cwd=kwargs.get("cwd")
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A wheel and an sdist built from this tree (no build isolation: no index needed)."""
    out = tmp_path_factory.mktemp("dist")
    build = _run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; "
            "print(b.build_wheel(sys.argv[1])); print(b.build_sdist(sys.argv[1]))",
            str(out),
        ],
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel, sdist = build.stdout.split()[-2:]
    return {"wheel": out / wheel, "sdist": out / sdist}


@pytest.fixture(scope="module")
def venv(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel in it; returns its bin directory."""
    home = tmp_path_factory.mktemp("venv")
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(home)])
    assert made.returncode == 0, made.stderr
    python = home / "bin" / "python"
    install = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(dists["wheel"]),
        ]
    )
    assert install.returncode == 0, install.stderr
    return home / "bin"


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def test_wheel_metadata(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = wheel.read(meta_name).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "chronoid/py.typed" in names
    assert "chronoid/postgres/chronoid.sql" in names
    assert "License-Expression: MIT" in meta
    assert "Project-URL: Documentation," in meta
    assert "Classifier: Typing :: Typed" in meta
    # no hard dependency on Linux; psycopg without [binary]; requests with etcd
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert all("extra ==" in line or "win32" in line for line in requires), requires
    assert not any("psycopg[binary]" in line and 'extra == "postgres"' in line for line in requires)
    assert any(line.startswith("Requires-Dist: requests") and '"etcd"' in line for line in requires)


def test_sdist_ships_no_tests(dists: dict[str, Path]) -> None:
    # The tests need the project's servers and scripts: the sdist leaves them out rather than
    # ship tests that fail where those are missing.
    with tarfile.open(dists["sdist"]) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    assert "LICENSE" in names
    assert "src/chronoid/postgres/chronoid.sql" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]


def test_every_help_in_a_bare_venv(venv: Path) -> None:
    assert len(COMMANDS) >= 10, COMMANDS
    failures = []
    for cmd in [(), *COMMANDS]:
        proc = _run([str(venv / "chronoid"), *cmd, "--help"])
        if proc.returncode != 0 or "usage: chronoid" not in proc.stdout:
            failures.append((cmd, proc.returncode, proc.stderr[-500:]))
    assert not failures, failures
    module = _run([str(venv / "python"), "-m", "chronoid", "--help"])
    assert module.returncode == 0 and "usage: chronoid" in module.stdout, module.stderr


def _readme_block(heading: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, heading
    return match.group(1)


def test_quick_start_in_a_bare_venv(venv: Path, tmp_path: Path) -> None:
    code = _readme_block("## Quick start")
    proc = _run([str(venv / "python"), "-c", code], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    new = _run([str(venv / "chronoid"), "new", "--variant", "chrono64s", "-n", "2"])
    assert new.returncode == 0 and len(new.stdout.split()) == 2, new.stderr


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["new", "--mode", "c", "--variant", "chrono64s", "--registry", "redis://h:1/0"], "redis"),
        (["new", "--mode", "c", "--variant", "chrono64s", "--registry", "etcd://h:1"], "etcd"),
        (
            ["new", "--mode", "c", "--variant", "chrono64s", "--registry", "postgresql://h/x"],
            "postgres",
        ),
        (["pg", "install", "--dsn", "postgresql://u:pw@127.0.0.1:1/x"], "postgres"),
        (["pg", "uninstall", "--dsn", "postgresql://u@127.0.0.1:1/x"], "postgres"),
        (["serve", "--port", "0", "--metrics-port", "0", "--data-dir", "{tmp}"], "server"),
        (["serve", "--ha", "postgresql://h/x", "--port", "0", "--advertise", "h:1"], "postgres"),
        (["serve", "--ha", "etcd://h:1", "--port", "0", "--advertise", "h:1"], "etcd"),
        (["stream", "--freq", "second", "--sink", "redis://h:1/0"], "redis"),
        (["stream", "--freq", "second", "--sink", "nats://h:1"], "nats"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value[:3]),
)
def test_missing_extra_is_one_line(venv: Path, tmp_path: Path, args: list[str], extra: str) -> None:
    proc = _run([str(venv / "chronoid"), *(a.format(tmp=tmp_path) for a in args)])
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"pip install 'chronoid[{extra}]'" in lines[0]
    assert "pw@" not in proc.stderr


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("chronoid.integrations.pydantic", "pydantic"),
        ("chronoid.integrations.sqlalchemy", "sqlalchemy"),
        ("chronoid.integrations.alembic", "alembic"),
        ("chronoid.integrations.django", "django"),
    ],
)
def test_integration_without_its_extra(venv: Path, module: str, extra: str) -> None:
    code = (
        "import chronoid.errors as e\n"
        f"try:\n    import {module}\nexcept e.MissingExtra as exc:\n    print(exc)\n"
    )
    proc = _run([str(venv / "python"), "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert f"pip install 'chronoid[{extra}]'" in proc.stdout
