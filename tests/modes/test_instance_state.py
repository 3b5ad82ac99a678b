"""Mode B's state file under attack: kill -9 while generating, a crash followed by the clock
stepped back, hand-edited and truncated files, leftovers of interrupted writes, a full disk.

Each test failed on a95c2b7: borrowed and clock-advanced ticks were recorded only at counter
reservations, so a restart repeated IDs in ticks the crashed process had used.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chronoid.clock import ManualClock
from chronoid.errors import StateFileError
from chronoid.modes import InstanceGenerator
from tests.support import tiny_tmpfs

START_NS = 1_767_225_600_000_000_000  # 2026-01-01, well inside every layout
HOUR_NS = 3_600_000_000_000


def _generate_until_killed(path: str, layout: str, out_path: str, reserve: int) -> None:
    gen = InstanceGenerator(layout, state_file=path, reserve=reserve)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    while True:  # every ID is on disk only after next_ids returned it: issued
        os.write(fd, np.array(gen.next_ids(64), dtype=np.uint64).tobytes())


def _read_ids(path: Path) -> np.ndarray[Any, np.dtype[np.uint64]]:
    raw = path.read_bytes() if path.exists() else b""
    return np.frombuffer(raw[: len(raw) // 8 * 8], dtype=np.uint64)


@pytest.mark.parametrize(
    ("layout", "reserve"), [("chrono32m", 1 << 16), ("chrono32m", 300), ("chrono64ms", 1000)]
)
def test_a_kill_9_loop_never_repeats_an_id(tmp_path: Path, layout: str, reserve: int) -> None:
    rng = random.Random(f"{layout}-{reserve}")
    ctx = multiprocessing.get_context("fork")
    state = str(tmp_path / "state.json")
    runs = []
    for run in range(6):
        out = tmp_path / f"ids.{run}"
        child = ctx.Process(target=_generate_until_killed, args=(state, layout, str(out), reserve))
        child.start()
        # Kill at a random moment once it issues (a write may be half done).
        deadline = rng.uniform(0.02, 0.2)
        while not out.exists() or out.stat().st_size == 0:
            child.join(0.005)
            assert child.exitcode is None, f"the generator exited with {child.exitcode}"
        child.join(deadline)
        child.kill()
        child.join(10)
        runs.append(_read_ids(out))
    ids = np.concatenate(runs)
    assert len(ids) > 6 * 64
    repeated = len(ids) - len(np.unique(ids))
    assert repeated == 0, f"{repeated} IDs repeated among {len(ids)} ({layout})"
    InstanceGenerator(layout, state_file=state).close()  # one more start cleans up
    assert not list(tmp_path.glob("state.json.tmp*")), "a leftover survived the next start"


def _crash_at(path: str, layout: str, start_ns: int, ms: int, per_ms: int, out: Any) -> None:
    clock = ManualClock(start_ns)
    gen = InstanceGenerator(layout, clock=clock, state_file=path)
    ids: list[int] = []
    for _ in range(ms):
        ids += gen.next_ids(per_ms)
        clock.advance_ms(1)
    out.put(ids)
    # Exit without close(): like kill -9, nothing more is written.


@pytest.mark.parametrize("layout", ["chrono64ms", "chrono32m", "chrono32bs"])
def test_a_crash_then_the_clock_stepped_back_repeats_nothing(tmp_path: Path, layout: str) -> None:
    path = str(tmp_path / "state.json")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    per_ms = 500 if layout == "chrono64ms" else 20
    child = ctx.Process(target=_crash_at, args=(path, layout, START_NS, 100, per_ms, out))
    child.start()
    before = out.get(timeout=60)
    child.join(30)
    # The restart's clock is an hour behind the crashed process's (an NTP step, a VM restore).
    clock = ManualClock(START_NS - HOUR_NS)
    again = InstanceGenerator(layout, clock=clock, state_file=path)
    # chrono64ms: enough to fill the crashed tick's 2^20 window and enter the ticks after it.
    after = again.next_ids(1_000_000 if layout == "chrono64ms" else 20_000)
    ids = np.array(before + after, dtype=np.uint64)
    assert len(np.unique(ids)) == len(ids), "an ID issued before the crash came again"
    assert again.layout.max_id >= int(ids.max())


def _state(tmp_path: Path, layout: str = "chrono64s") -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "state.json"
    gen = InstanceGenerator(layout, state_file=path)
    gen.next_ids(10)
    gen.close()
    return path, json.loads(path.read_text())


BAD_FIELDS = {
    "tick beyond the layout": ("tick", 1 << 40),
    "negative counter": ("reserved", -1),
    "float counter": ("reserved", 1.5),
    "string counter": ("reserved", "10"),
    "bool counter": ("reserved", True),
    "index 99": ("index", 99),
    "negative node": ("base_node", -1),
    "node beyond the layout": ("base_node", 1 << 15),
    "salt beyond the suffix": ("salt", 1 << 30),
    "tick_first above reserved": ("tick_first", 1 << 50),
    "version 99": ("version", 99),
    "version true": ("version", True),
    "unknown key": ("comment", "x"),
}


@pytest.mark.parametrize("field", list(BAD_FIELDS.values()), ids=list(BAD_FIELDS))
def test_a_hand_edited_state_file_is_refused_saying_what(
    tmp_path: Path, field: tuple[str, object]
) -> None:
    path, state = _state(tmp_path)
    key, value = field
    state[key] = value
    path.write_text(json.dumps(state))
    with pytest.raises(StateFileError, match=f"not a valid Mode B state file: .*{key}"):
        InstanceGenerator("chrono64s", state_file=path)


@pytest.mark.parametrize("raw", [b"", b"\n", b'{"version": 2, "layout": "chro'])
def test_a_truncated_state_file_is_refused(tmp_path: Path, raw: bytes) -> None:
    path, _ = _state(tmp_path)
    path.write_bytes(raw)
    with pytest.raises(StateFileError, match="not a valid Mode B state file"):
        InstanceGenerator("chrono64s", state_file=path)


def test_leftovers_of_interrupted_writes_are_removed_at_start(tmp_path: Path) -> None:
    path, _ = _state(tmp_path)
    for pid in (11, 12, 99999):
        (tmp_path / f"state.json.tmp.{pid}").write_bytes(b"" if pid == 11 else b'{"x"')
    (tmp_path / "other.json.tmp.11").write_bytes(b"not ours")
    InstanceGenerator("chrono64s", state_file=path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.json.tmp.11",
        "state.json",
        "state.json.lock",
    ]


def test_a_full_disk_issues_nothing_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        path = disk / "state.json"
        gen = InstanceGenerator("chrono64s", state_file=path)
        filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(filler, b"\0" * 4096)
        os.close(filler)
        with pytest.raises(StateFileError, match="No space left on device"):
            gen.next_id()
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "state.json.lock"]
        os.unlink(disk / "filler")
        first = gen.next_id()  # space again: it issues, durably
        assert json.loads(path.read_text())["reserved"] > 0 and first > 0
        gen.close()


def test_a_version_1_state_resumes_above_every_tick_it_could_have_borrowed(
    tmp_path: Path,
) -> None:
    path, state = _state(tmp_path, "chrono32m")
    state.update(version=1, tick=1000, tick_first=0, reserved=8 * 50)  # 50 borrowable ticks
    path.write_text(json.dumps(state))
    clock = ManualClock(InstanceGenerator("chrono32m").layout.tick_start_ns(1000))
    gen = InstanceGenerator("chrono32m", clock=clock, state_file=path)
    gen.next_id()
    assert gen.last_tick > 1000 + 50
    gen.close()
    assert json.loads(path.read_text())["version"] == 2
