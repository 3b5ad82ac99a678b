"""The named layouts: the splits after the errata, their epochs, their names as a type."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest

from chronoid import VARIANTS, VariantName, get_layout
from chronoid.errors import UnknownVariant
from chronoid.variants import CHRONO_EPOCH


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def test_errata_splits() -> None:
    # Erratum 1: the 33-bit splits lose a node bit; erratum 2: signed forms lose a node bit,
    # or a timestamp bit where there are no node bits.
    assert get_layout("uchrono32mo").bits_label() == "12/10/10"
    assert get_layout("uchrono32w").bits_label() == "14/9/9"
    assert get_layout("chrono64s").bits_label() == "33/15/15"
    assert get_layout("uchrono64s").bits_label() == "33/16/15"
    assert get_layout("chrono32bs").bits_label() == "31/0/0"
    assert get_layout("snowflake").bits_label() == "41/10/12"
    assert get_layout("chrono64h").expiry.year == 2259
    assert get_layout("chrono32tm").expiry.year == 2338
    assert get_layout("chrono32bs").expiry.year == 2156
    assert get_layout("uchrono32bs").expiry.year == 2292


def test_snowflake_epoch_and_unit() -> None:
    layout = get_layout("snowflake")
    assert layout.epoch == datetime(2024, 1, 1, tzinfo=UTC)
    assert layout.tick_of_ns(_ns(datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC))) == 1000


def test_unknown_variant_suggests() -> None:
    with pytest.raises(UnknownVariant, match="did you mean"):
        get_layout("chrono64sec")


def test_every_chrono_variant_uses_the_2020_epoch() -> None:
    for name, layout in VARIANTS.items():
        if name != "snowflake":
            assert layout.epoch == CHRONO_EPOCH


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
