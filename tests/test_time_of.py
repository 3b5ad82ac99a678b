"""``time_of``: when an ID was made, as an aware datetime; variant names as a Literal type."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest

from chronoid import (
    VARIANTS,
    DecodeError,
    Generator,
    ManualClock,
    UnknownVariant,
    VariantName,
    get_layout,
    time_of,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "variant", ["snowflake", "chrono64s", "chrono64ms", "chrono32y", "uchrono64mo"]
)
def test_time_of_is_the_start_of_the_tick(variant: str) -> None:
    moment = datetime(2026, 7, 15, 12, 34, 56, 789_000, tzinfo=UTC)
    clock = ManualClock(int(moment.timestamp() * 1e9))
    layout = get_layout(variant)
    value = Generator(layout, 1, clock=clock).next_id()
    when = time_of(value, layout)
    assert when.tzinfo is not None and when.utcoffset() is not None
    assert when == layout.time_of_id(value) == layout.unpack(value).time
    assert when <= moment
    assert layout.tick_of_ns(int(moment.timestamp() * 1e9)) == layout.unpack(value).timestamp


def test_time_of_examples() -> None:
    assert time_of(0, "snowflake") == datetime(2024, 1, 1, tzinfo=UTC)
    assert time_of(1 << 22, "snowflake") == datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    assert time_of(5 << 23, "chrono32y") == datetime(2025, 1, 1, tzinfo=UTC)


def test_time_of_refuses_bad_input() -> None:
    with pytest.raises(UnknownVariant, match="chrono64x"):
        time_of(1, "chrono64x")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        time_of(-1, "chrono64s")
    with pytest.raises(DecodeError):
        time_of(1 << 63, "chrono64s")
    with pytest.raises(DecodeError):
        time_of("12", "chrono64s")  # type: ignore[arg-type]


def test_variant_literal_lists_every_variant() -> None:
    assert sorted(get_args(VariantName)) == sorted(VARIANTS)


def test_mypy_strict_catches_a_misspelt_variant(tmp_path: Path) -> None:
    program = tmp_path / "user_program.py"
    program.write_text(
        textwrap.dedent(
            """
            from datetime import datetime

            from chronoid import Generator, VariantName, get_layout, hlc_generator, time_of
            from chronoid.modes import InstanceGenerator, PersonaGenerator

            good: VariantName = "chrono64s"
            gen = Generator(good, node=3)
            when: datetime = time_of(gen.next_id(), "chrono64s")
            from_config: str = "chrono64s"
            layout = get_layout(from_config)  # a name known only at run time: checked there
            Generator(layout, node=1)
            hlc_generator(1, "snowflake")
            PersonaGenerator("chrono64s")

            Generator("chrono64x", node=3)
            time_of(1, "uchrono32z")
            InstanceGenerator("chrono64q")
            """
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "c"),
            str(program),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 3, proc.stdout + proc.stderr
    assert "user_program.py:16:" in errors[0] and "chrono64x" in errors[0]
    assert "user_program.py:17:" in errors[1] and "uchrono32z" in errors[1]
    assert "user_program.py:18:" in errors[2] and "chrono64q" in errors[2]
