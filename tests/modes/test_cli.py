"""``chronoid new --mode a|b|c``: one subprocess run per mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chronoid.variants import get_layout


def _new(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronoid", "new", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_new_mode_a() -> None:
    run = _new("--mode", "a", "--variant", "chrono64s", "-n", "1000")
    assert run.returncode == 0, run.stderr
    ids = [int(line) for line in run.stdout.split()]
    assert len(ids) == len(set(ids)) == 1000
    refused = _new("--mode", "a", "--variant", "chrono64ms")
    assert refused.returncode == 1 and "unsafe for Mode A" in refused.stderr
    assert _new("--mode", "a", "--variant", "chrono64ms", "--force").returncode == 0


def test_new_mode_b_with_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "b.json")
    first = _new("--mode", "b", "--variant", "chrono64s", "--state-file", state, "-n", "500")
    second = _new("--mode", "b", "--variant", "chrono64s", "--state-file", state, "-n", "500")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    ids = [int(v) for v in (first.stdout + second.stdout).split()]
    assert len(set(ids)) == 1000


@pytest.mark.integration
def test_new_mode_c_on_redis(redis_url: str) -> None:
    import redis

    # A namespace with an old history, as a long-used registry has (no lock-delay).
    redis.Redis.from_url(redis_url).set("chronoid-cli-test:registry", 0)
    run = _new(
        "--mode",
        "c",
        "--variant",
        "chrono64s",
        "--registry",
        f"{redis_url}?prefix=chronoid-cli-test:&nodes=42-42",
        "-n",
        "100",
    )
    assert run.returncode == 0, run.stderr
    layout = get_layout("chrono64s")
    assert {layout.node_of(int(v)) for v in run.stdout.split()} == {42}
    # The lease was released at exit: a second run gets node 42 again.
    again = _new(
        "--mode",
        "c",
        "--variant",
        "chrono64s",
        "--registry",
        f"{redis_url}?prefix=chronoid-cli-test:&nodes=42-42",
        "-n",
        "1",
    )
    assert again.returncode == 0, again.stderr


def test_mode_options_are_checked() -> None:
    no_registry = _new("--mode", "c")
    assert no_registry.returncode == 1 and "--registry" in no_registry.stderr
    stray = _new("--state-file", "x.json")
    assert stray.returncode == 1 and "--mode b" in stray.stderr
    node = _new("--mode", "a", "--node", "3")
    assert node.returncode == 1 and "--node" in node.stderr
