"""The core subcommands, run as real processes (`chronoid ...` and `python -m chronoid ...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chronoid import get_layout
from chronoid.codec import decode_base32, format_id

CHRONOID = str(Path(sys.executable).with_name("chronoid"))


def run(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "chronoid", *args] if module else [CHRONOID, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_python_m_entry_point_prints_ids() -> None:
    result = run("new", "-n", "3", module=True)
    assert result.returncode == 0, result.stderr
    ids = [int(line) for line in result.stdout.split()]
    assert len(ids) == 3 and ids == sorted(ids) and len(set(ids)) == 3


def test_new_in_every_format() -> None:
    result = run("new", "--variant", "chrono64s", "--node", "7", "-n", "5", "--format", "base32")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert len(lines) == 5 and all(len(s) == 13 for s in lines) and lines == sorted(lines)
    assert {get_layout("chrono64s").node_of(decode_base32(s)) for s in lines} == {7}
    hex_out = run("new", "--format", "hex").stdout.strip()
    assert len(hex_out) == 18 and hex_out.startswith("0x") and int(hex_out, 16) > 0


def test_inspect_round_trip_json() -> None:
    made = run("new", "--variant", "chrono32y", "--node", "9", "--format", "base32").stdout.strip()
    result = run("inspect", made, "--variant", "chrono32y", "--json")
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)
    assert fields["node"] == 9 and fields["variant"] == "chrono32y"
    assert fields["base32"] == made and isinstance(fields["id"], str)
    assert fields["time"].endswith("-01-01T00:00:00Z")  # year precision


def test_inspect_text() -> None:
    value = (1000 << 22) | (5 << 12) | 3
    result = run("inspect", str(value), "--variant", "snowflake")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{value}  snowflake 2024-01-01T00:00:01Z node=5 sequence=3 timestamp=1000 id={value} "
        f"base32=000000Z8050003 hex=0x00000000fa005003 form=int\n"
    ).replace("000000Z8050003", format_id(value, 64, "base32"))


def test_variants_table_lists_every_variant() -> None:
    result = run("variants")
    assert result.returncode == 0
    assert "chrono64s" in result.stdout and "33/15/15" in result.stdout
    assert "uchrono32w" in result.stdout and "14/9/9" in result.stdout
    md = run("variants", "--markdown").stdout
    assert md.startswith("| variant |") and "| `snowflake` |" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("new", "--node", "1024"), "node 1024 is out of range for snowflake"),
        (("new", "--variant", "chrono64x"), "unknown variant 'chrono64x'"),
        (("new", "-n", "0"), "--count must be"),
        (("inspect", "00000U1", "--variant", "chrono32y"), "invalid Crockford"),
        (("inspect", str(2**63), "--variant", "snowflake"), "above snowflake's largest ID"),
        # Checked by the library, which names the parameter; the CLI prints the flag.
        (("stream", "--buffer-size", "0"), "--buffer-size must be an int >= 1, got 0"),
        (("stream", "--count", "0"), "--count must be >= 1, got 0"),
        (("serve", "--sites", "0"), "--sites must be in 1..1024, got 0"),
        (
            ("serve", "--sites", "2", "--initial", "0"),
            "--initial must be in 1..4611686018427387903",
        ),
        (("probe", "--timeout", "0"), "--timeout must be in (0, 300] seconds, got 0.0"),
        (("serve", "--max-connections", "0"), "--max-connections must be an int >= 1, got 0"),
    ],
)
def test_errors_are_one_line_on_stderr(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stderr.startswith("chronoid: error: ")


def test_help_everywhere() -> None:
    for args in (("--help",), ("new", "--help"), ("inspect", "--help"), ("variants", "--help")):
        result = run(*args)
        assert result.returncode == 0 and "usage: chronoid" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("chronoid ")
    assert result.stdout.split()[1][0].isdigit(), result.stdout


def test_new_and_inspect_import_no_event_loop_tls_or_driver() -> None:
    # Building the parser imports only the group of the command that runs.
    heavy = ("asyncio", "ssl", "socket", "psycopg", "redis", "importlib.metadata")
    for args in (["new"], ["inspect", "386321955185229824"]):
        code = (
            "import sys\n"
            "from chronoid.cli import main\n"
            f"status = main({args!r})\n"
            f"print(status, [m for m in {heavy!r} if m in sys.modules])"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "0 []", (args, result.stdout)


def test_broken_pipe_is_not_an_error() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    shell = f"'{CHRONOID}' new -n 2000000 | head -n 1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, env=env
    )
    assert result.stdout.strip().isdigit()
    assert "Traceback" not in result.stderr
