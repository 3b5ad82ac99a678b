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
    built = {}
    for kind in ("wheel", "sdist"):  # one process each: setuptools keeps state between them
        build = _run(
            [
                sys.executable,
                "-c",
                f"import sys; from setuptools import build_meta as b; "
                f"print('BUILT', b.build_{kind}(sys.argv[1]))",
                str(out),
            ],
            cwd=ROOT,
        )
        lines = [line for line in build.stdout.splitlines() if line.startswith("BUILT ")]
        assert build.returncode == 0 and lines, build.stdout[-2000:] + build.stderr[-2000:]
        built[kind] = out / lines[-1].split()[1]
    return built


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
    assert "chronoid/postgres/install_template.sql" in names  # sqlgen reads it
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
    assert "src/chronoid/postgres/install_template.sql" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]


_IN_VENV = """
import contextlib, io, json, sys
from chronoid.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def _many(venv: Path, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """Run ``chronoid`` once per argument list inside one interpreter of the venv (one
    start-up instead of one per command keeps this test quick)."""
    import json

    proc = _run([str(venv / "python"), "-c", _IN_VENV, json.dumps(commands)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [tuple(r) for r in json.loads(proc.stdout.splitlines()[-1])]


def test_every_help_in_a_bare_venv(venv: Path) -> None:
    assert len(COMMANDS) >= 10, COMMANDS
    results = _many(venv, [[*cmd, "--help"] for cmd in COMMANDS])
    failures = [
        (cmd, r)
        for cmd, r in zip(COMMANDS, results, strict=True)
        if r[0] != 0 or "usage:" not in r[1]
    ]
    assert not failures, failures
    for cmd in ([str(venv / "chronoid")], [str(venv / "python"), "-m", "chronoid"]):
        proc = _run([*cmd, "--help"])  # the console script and python -m, as processes
        assert proc.returncode == 0 and "usage: chronoid" in proc.stdout, proc.stderr


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


MISSING_EXTRA_CASES: list[tuple[list[str], str]] = [
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
    (["serve", "--port", "0", "--event-loop", "uvloop", "--data-dir", "{tmp}"], "server"),
]


def test_missing_extra_is_one_line(venv: Path, tmp_path: Path) -> None:
    # all cases in one interpreter of the venv: a process per case would be slow
    commands = [[a.format(tmp=tmp_path) for a in args] for args, _ in MISSING_EXTRA_CASES]
    failures = []
    for (args, extra), (code, _, stderr) in zip(
        MISSING_EXTRA_CASES, _many(venv, commands), strict=True
    ):
        lines = stderr.strip().splitlines()
        if (
            code != 1
            or len(lines) != 1
            or f"pip install 'chronoid[{extra}]'" not in lines[0]
            or "pw@" in stderr
        ):
            failures.append((args, code, stderr[-800:]))
    assert not failures, failures


def test_missing_extra_through_the_console_script(venv: Path) -> None:
    proc = _run([str(venv / "chronoid"), "pg", "install", "--dsn", "postgresql://h/x"])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "chronoid: error: installing chronoid's SQL functions (chronoid pg) needs the "
        "'postgres' extra (psycopg is not installed): pip install 'chronoid[postgres]'"
    )


def test_integrations_without_their_extras(venv: Path) -> None:
    code = """
import chronoid.errors as e
for module in ("pydantic", "sqlalchemy", "alembic", "django"):
    try:
        __import__(f"chronoid.integrations.{module}")
    except e.MissingExtra as exc:
        print(exc)
    else:
        print("imported", module)
"""
    proc = _run([str(venv / "python"), "-c", code])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4, proc.stdout
    for line, extra in zip(lines, ("pydantic", "sqlalchemy", "alembic", "django"), strict=True):
        assert line.endswith(f"pip install 'chronoid[{extra}]'"), line


def test_readme_links_work_outside_the_repository() -> None:
    import tomllib

    from chronoid.project import DOCS_URL, REPOSITORY_URL

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["urls"]["Homepage"] == REPOSITORY_URL
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    relative = [t for t in targets if not t.startswith(("http://", "https://", "#"))]
    assert not relative, relative  # a relative link is dead on a package index
    for target in targets:
        if target.startswith(DOCS_URL + "/"):
            path = target[len(DOCS_URL) + 1 :].split("#")[0]
            assert (ROOT / "docs" / path).is_file(), target
    for pointer in ("shared/seeds", "scripts/services.sh"):
        assert pointer not in README


def test_the_floors_tested_are_the_lower_bounds_pyproject_declares() -> None:
    """scripts/test.sh runs the integrations against scripts/floors.txt: if pyproject raised or
    lowered a bound without it, the run would test releases users cannot (or need not) have."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    declared = {}
    for requirements in extras.values():
        for requirement in requirements:
            name, sep, bound = requirement.partition(">=")
            if sep and name in {"pydantic", "sqlalchemy", "alembic", "django"}:
                declared[name] = bound
    pinned = {}
    for line in (ROOT / "scripts" / "floors.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name] = version
    assert set(pinned) == set(declared) == {"pydantic", "sqlalchemy", "alembic", "django"}
    for name, version in pinned.items():
        # 2.7.0 is the floor 2.7, 4.2 the floor 4.2: compare release tuples, zero-padded
        def release(text: str) -> tuple[int, ...]:
            parts = [int(p) for p in text.split(".")]
            return tuple(parts + [0] * (3 - len(parts)))

        assert release(version) == release(declared[name]), (name, version, declared[name])
