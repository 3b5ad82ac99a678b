"""``chronoid inspect``, ``new --json``, ``variants --json`` and terminal manners (issue 15.2,
15.8), as real processes where the behaviour is the command's."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chronoid import Generator, get_layout
from chronoid.cli import ids as cli_ids
from chronoid.cli import main
from chronoid.codec import decode_base32, format_id
from chronoid.progress import ProgressLine
from chronoid.variants import VARIANTS

CHRONOID = str(Path(sys.executable).with_name("chronoid"))


def run(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    data = stdin.decode("latin-1") if isinstance(stdin, bytes) else stdin
    return subprocess.run(
        [sys.executable, "-m", "chronoid", *args],
        input=data,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _made_now(variant: str, form: str = "int") -> str:
    """An ID made now at node 3, as ``chronoid new --node 3`` prints it (made in-process:
    these tests are about reading IDs back)."""
    layout = get_layout(variant)
    return format_id(Generator(layout, 3).next_id(), layout.width, form)


def test_without_variant_it_lists_plausible_layouts_instead_of_assuming_snowflake() -> None:
    # A PostgreSQL-style chrono64s ID: a95c2b7 decoded it as snowflake, a wrong date, silently.
    made = _made_now("chrono64s")
    result = run("inspect", made, "--json")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert record["input"] == made
    names = [c["variant"] for c in record["candidates"]]
    assert "chrono64s" in names
    now = datetime.now(UTC)
    for candidate in record["candidates"]:
        when = datetime.fromisoformat(candidate["time"].replace("Z", "+00:00"))
        assert when.timestamp() <= now.timestamp() + 86_400 and candidate["plausible"]
    mine = next(c for c in record["candidates"] if c["variant"] == "chrono64s")
    assert (
        mine["node"] == 3
        and abs(
            datetime.fromisoformat(mine["time"].replace("Z", "+00:00")).timestamp()
            - now.timestamp()
        )
        < 600
    )
    # The text form is one line too, and names the layouts.
    text = run("inspect", made)
    assert text.returncode == 0 and text.stdout.count("\n") == 1
    assert text.stdout.startswith(f"{made}  read as int; plausible in ")
    assert " chrono64s " in text.stdout


def test_an_implausible_time_under_the_named_variant_is_warned_about() -> None:
    made = _made_now("snowflake")
    result = run("inspect", made, "--variant", "chrono64ms", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["plausible"] is False
    assert "warning:" in result.stderr and "is --variant right?" in result.stderr
    fine = run("inspect", made, "--variant", "snowflake")
    assert fine.returncode == 0 and fine.stderr == ""


def test_several_ids_from_arguments_and_stdin_one_line_each() -> None:
    ids = [_made_now("chrono32y", "base32"), _made_now("chrono32y"), "0x0000000a"]
    stdin = "\n".join([ids[1], "", "  " + ids[0] + "\r", ids[2]]) + "\n"
    result = run("inspect", ids[0], "-", ids[2], "--variant", "chrono32y", "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"].strip() for r in records] == [ids[0], ids[1], ids[0], ids[2], ids[2]]
    assert [r["form"] for r in records] == ["base32", "int", "base32", "hex", "hex"]
    assert records[0]["node"] == 3 and records[0]["id"] == str(decode_base32(ids[0], 32))
    text = run("inspect", "-", "--variant", "chrono32y", stdin=stdin)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == 3


def test_stdin_split_byte_by_byte_reads_the_same() -> None:
    made = [_made_now("chrono64s", "base32"), "0612345678901"]
    data = ("\n".join(made) + "\n").encode()
    process = subprocess.Popen(
        [sys.executable, "-m", "chronoid", "inspect", "-", "--variant", "chrono64s", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    for byte in data:
        process.stdin.write(bytes([byte]))
        process.stdin.flush()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert [json.loads(line)["base32"] for line in out.splitlines()] == made


def test_bad_lines_are_reported_and_the_good_ones_decoded() -> None:
    good = _made_now("chrono64s")
    # A 5,000-byte line of zeros and a 5 is refused as too long, not cut and read as 0.
    stdin = b"\xff\xfe\n" + "²\n-5\n0x f\n".encode() + b"0" * 5000 + b"5\n" + good.encode() + b"\n"
    result = subprocess.run(
        [sys.executable, "-m", "chronoid", "inspect", "-", "--variant", "chrono64s", "--json"],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("chronoid: error: ")]
    assert len(errors) == 5 and len(stderr.splitlines()) == 5
    assert all(len(line) < 400 for line in errors)
    assert "longer than 1024 bytes" in errors[4]
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [("error" in r) for r in records] == [True] * 5 + [False]
    assert records[-1]["id"] == good


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (
            ("-5", "²", "٣٤", "０x1f", "0x+ff", "0xf_f"),
            ["never negative", "non-ASCII character '²'", "non-ASCII character '٣'",
             "non-ASCII character '０'", "not a hex ID", "not a hex ID"],
        ),
        (
            ("--variant", "chrono64ms", "--", "-ZZ", "1234567890123"),
            ["never negative", "ambiguous: decimal 1234567890123 (chrono64ms time 2020"],
        ),
    ],
)  # fmt: skip
def test_refusals_are_one_line_each_without_traceback(
    args: tuple[str, ...], messages: list[str]
) -> None:
    result = run("inspect", *args)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(messages), result.stderr
    for line, message in zip(lines, messages, strict=True):
        assert line.startswith("chronoid: error: ") and message in line, line


def test_empty_stdin_is_nothing_to_do() -> None:
    result = run("inspect", "-", stdin="")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_an_all_digit_base32_id_round_trips_through_the_command() -> None:
    result = run("inspect", "0612345678901", "--variant", "chrono64ms", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["form"] == "base32" and record["time"].startswith("2026-07-27")


def test_new_json_and_variants_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = run("new", "--variant", "chrono64s", "--node", "5", "-n", "3", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and {r["node"] for r in records} == {5}
    assert all(r["variant"] == "chrono64s" and isinstance(r["id"], str) for r in records)
    assert records[0]["base32"] == format_id(int(records[0]["id"]), 64, "base32")
    assert main(["new", "--json", "--format", "hex"]) == 1
    assert "leave out --format" in capsys.readouterr().err
    assert main(["variants", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["variant"] for r in rows] == list(VARIANTS)
    chrono64s = next(r for r in rows if r["variant"] == "chrono64s")
    assert (chrono64s["timestamp_bits"], chrono64s["node_bits"], chrono64s["width"]) == (33, 15, 64)
    assert chrono64s["nodes"] == 32_768 and chrono64s["signed"] is True


def test_sim_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) > 10 and {"name", "summary"} <= set(rows[0])


# -- terminal manners (issue 15.8) ---------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_only_on_a_terminal() -> None:
    now = [0.0]
    tty, log = _Terminal(), io.StringIO()
    on_tty = ProgressLine(tty, clock=lambda: now[0])
    in_log = ProgressLine(log, clock=lambda: now[0])
    for step in range(100):
        now[0] = step * 0.5
        on_tty.update(f"step {step}")
        in_log.update(f"step {step}")
    on_tty.finish("done")
    in_log.finish("done")
    assert tty.getvalue().startswith("\r\x1b[2Kstep 0\r\x1b[2Kstep 1")
    assert tty.getvalue().endswith("\r\x1b[2Kdone\n")
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()
    # One plain line per 10 s at most: steps 0, 20, 40, ... then the final line.
    assert log.getvalue().splitlines() == [f"step {s}" for s in range(0, 100, 20)] + ["done"]
    quiet = io.StringIO()
    silent = ProgressLine(quiet, plain=False, clock=lambda: now[0])
    silent.update("x")
    silent.finish()
    assert quiet.getvalue() == ""


def test_sim_writes_no_escape_codes_into_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    from chronoid.sim.model import Context
    from chronoid.sim.runner import run as run_sim

    run_sim(["boundaries"], Context(seed=1))
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\r" not in err
    assert err.splitlines() == ["[1/1] boundaries: running", err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("[1/1] boundaries: holds")


def test_new_shows_progress_on_a_terminal_and_nothing_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_ids, "_PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr("chronoid.progress.REDRAW_INTERVAL_S", 0.0)
    out, err = io.StringIO(), _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["new", "-n", "250000", "--format", "base32"]) == 0
    assert len(out.getvalue().splitlines()) == 250_000
    shown = err.getvalue()
    assert "chronoid new: 100,000 / 250,000 IDs (40%)" in shown
    assert shown.endswith("\r\x1b[2K")  # the line is erased at the end
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["new", "-n", "250000", "--format", "base32"]) == 0
    assert plain.getvalue() == ""


def test_new_base32_is_what_format_id_writes() -> None:
    layout = get_layout("chrono32y")
    result = run("new", "--variant", "chrono32y", "-n", "1000", "--format", "base32")
    values = [decode_base32(s, 32) for s in result.stdout.split()]
    assert [format_id(v, layout.width, "base32") for v in values] == result.stdout.split()
    assert len(set(values)) == 1000


def test_bytes_that_are_not_utf8_are_named_as_bytes_and_json_stays_unicode() -> None:
    """On main at d4e129d the JSON ``input`` carried lone surrogates (``"\\udcff"``: no
    Unicode, Node's encodeURIComponent throws on it) and the message named a character
    U+DCFF that the input never held."""
    bad_arg = b"\xfe1".decode("utf-8", "surrogateescape")  # as argv gives bytes to Python
    argv = [sys.executable, "-m", "chronoid", "inspect", "-", bad_arg, "--json"]
    result = subprocess.run(
        argv, input=b"\xff\xfe12\n", capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 1
    errors = result.stderr.decode().splitlines()
    assert "byte 0xFF, which is not UTF-8, at position 0" in errors[0]
    assert "byte 0xFE, which is not UTF-8, at position 0" in errors[1]
    assert all("udc" not in line for line in errors)
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["input"] for r in records] == ["\\xff\\xfe12", "\\xfe1"]
    for record in records:
        for value in record.values():
            value.encode("utf-8")  # strict: a lone surrogate raises


def test_closed_stdin_and_unwritable_stdout_are_one_line_each() -> None:
    """On main at d4e129d both ended in a traceback: ``inspect - <&-`` (AttributeError:
    sys.stdin is None) and output to a full disk (OSError ENOSPC from the flush)."""
    command = [sys.executable, "-m", "chronoid", "inspect"]
    closed = subprocess.run(
        [*command, "-"], preexec_fn=lambda: os.close(0), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    with open("/dev/full", "w") as full:
        unwritable = subprocess.run(
            [*command, "0AM6T4NTM0000", "--variant", "snowflake"], stdout=full,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert (closed.returncode, closed.stderr) == (
        1,
        "chronoid: error: standard input is closed: nothing to read for '-'\n",
    )
    assert unwritable.returncode == 1
    assert unwritable.stderr.startswith("chronoid: error: No space left on device")
    assert len(unwritable.stderr.splitlines()) == 1, unwritable.stderr
