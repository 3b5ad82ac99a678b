"""Counters, reservations and the file store, without a network."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path

import pytest

from chronoid.errors import InvalidArgument, StateFileError, StoreUnavailable
from chronoid.sequencer.sequences import BLOCK_MIN, MAX_COUNT, Sequences
from chronoid.sequencer.store import FileStore


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FullDiskStore:
    """A FileStore whose disk fills up on demand (reserve raises ENOSPC)."""

    def __init__(self, path: Path) -> None:
        self.inner = FileStore(path)
        self.full = False
        self.calls = 0

    def load(self) -> dict[str, int]:
        return self.inner.load()

    def reserve(self, name: str, high: int) -> None:
        self.calls += 1
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.inner.reserve(name, high)


def stored(path: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads((path / "sequencer.json").read_text())["sequences"]
    return data


def test_values_are_consecutive_and_reserved_ahead(tmp_path: Path) -> None:
    seqs = Sequences(FileStore(tmp_path))
    assert [seqs.take() for _ in range(3)] == [1, 2, 3]
    assert seqs.take(10) == 4
    assert seqs.current() == 14
    seqs.close()  # waits for prefetches, then stores the exact next value
    assert stored(tmp_path)["default"] == 14


def test_watermark_is_always_above_what_was_handed_out(tmp_path: Path) -> None:
    seqs = Sequences(FileStore(tmp_path), block_min=8, block_max=64)
    for _ in range(2000):
        value = seqs.take()
        # Read the file, not memory: a crash now must resume above every value out.
        if value % 97 == 0:
            seqs._executor.submit(lambda: None).result()  # let a prefetch land
            assert stored(tmp_path)["default"] > value
    assert stored(tmp_path)["default"] - seqs.current() <= 2 * 64


def test_restart_resumes_above_every_reservation_and_clean_stop_has_no_gap(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    seqs = Sequences(store)
    last = [seqs.take() for _ in range(5000)][-1]
    # Simulated crash: no Sequences.close(); the lock goes with the process.
    store.close()
    store = FileStore(tmp_path)
    crashed = Sequences(store)
    first = crashed.take()
    assert last < first <= last + 1 + 2 * crashed.block_max
    crashed.close()
    store.close()
    assert Sequences(FileStore(tmp_path)).take() == first + 1


def test_initial_never_moves_backwards_unless_forced(tmp_path: Path) -> None:
    def reopen(**options: object) -> Sequences:
        store = FileStore(tmp_path)
        try:
            sequences = Sequences(store, **options)  # type: ignore[arg-type]
            sequences.close()
            return sequences
        finally:
            store.close()

    assert reopen(initial=1000).current() == 1000
    assert reopen(initial=5).current() == 1000
    assert reopen(initial=5000).current() == 5000
    assert reopen(initial=7, force_initial=True).current() == 7


def test_named_sequences_are_independent(tmp_path: Path) -> None:
    seqs = Sequences(FileStore(tmp_path), initial=100)
    assert seqs.take(1, "tx") == 1
    assert seqs.take(1, "events") == 1
    assert seqs.take() == 100
    assert seqs.current("tx") == 2 and seqs.current("never-used") == 1
    seqs.close()
    assert stored(tmp_path) == {"default": 101, "tx": 2, "events": 2}


@pytest.mark.parametrize("count", [0, -1, MAX_COUNT + 1])
def test_bad_count_consumes_nothing(tmp_path: Path, count: int) -> None:
    seqs = Sequences(FileStore(tmp_path))
    with pytest.raises(InvalidArgument, match="count must be"):
        seqs.take(count)
    assert seqs.current() == 1


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="sequence name"):
        Sequences(FileStore(tmp_path)).take(1, name)


def test_block_grows_under_load_and_shrinks_when_idle(tmp_path: Path) -> None:
    clock = ManualClock()
    seqs = Sequences(FileStore(tmp_path), block_min=16, block_max=128, clock=clock)
    for _ in range(2000):
        seqs.take()
    assert seqs.block() == 128
    for _ in range(3):
        clock.now += 120
        seqs.take(128)
    assert seqs.block() < 128


def test_full_disk_stops_issuing_and_recovers(tmp_path: Path) -> None:
    clock = ManualClock()
    store = FullDiskStore(tmp_path)
    seqs = Sequences(store, block_min=BLOCK_MIN, block_max=BLOCK_MIN, clock=clock)
    store.full = True
    issued = []
    with pytest.raises(StoreUnavailable, match="No space left"):
        for _ in range(10 * BLOCK_MIN):
            issued.append(seqs.take())
    # Everything handed out was durably reserved before the disk filled up.
    assert issued and issued[-1] < stored(tmp_path)["default"]
    before = seqs.current()
    with pytest.raises(StoreUnavailable):
        seqs.take()
    assert seqs.current() == before  # the refused request consumed nothing
    store.full = False
    clock.now += 2  # past the retry pause
    assert seqs.take() == before


def test_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sequencer.json").write_text("{not json")
    with pytest.raises(StateFileError, match="not a valid chronoid sequencer state file"):
        Sequences(FileStore(tmp_path))


def test_constructor_arguments_are_validated(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="initial"):
        Sequences(FileStore(tmp_path), initial=0)
    with pytest.raises(InvalidArgument, match="block_min"):
        Sequences(FileStore(tmp_path), block_min=10, block_max=5)
    with pytest.raises(InvalidArgument, match="watermark"):
        FileStore(tmp_path).reserve("x", 0)


def test_an_abandoned_term_issues_what_it_reserved_then_refuses(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    sequences = Sequences(store, block_min=16, block_max=16)
    first = sequences.take()
    sequences.abandon()  # the term is over: no prefetch is scheduled, nothing crashes
    taken = [sequences.take() for _ in range(15)]
    assert taken == list(range(first + 1, first + 16))
    store.close()
    assert FileStore(tmp_path).load()["default"] >= first + 16


class StallingStore:
    """A FileStore whose writes hang while ``gate`` is clear (a commit on a stalled disk)."""

    def __init__(self, path: Path) -> None:
        self.inner = FileStore(path)
        self.gate = threading.Event()
        self.gate.set()
        self.stalled = threading.Event()

    def load(self) -> dict[str, int]:
        return self.inner.load()

    def reserve(self, name: str, high: int) -> None:
        if not self.gate.is_set():
            self.stalled.set()
            self.gate.wait()
        self.inner.reserve(name, high)


def test_a_stalled_reservation_fails_the_request_instead_of_freezing_the_server(
    tmp_path: Path,
) -> None:
    store = StallingStore(tmp_path)
    sequences = Sequences(store, block_min=16, block_max=16, wait_timeout_s=0.2)
    store.gate.clear()
    taken = [sequences.take()]
    while not store.stalled.is_set():  # the background reservation is now stuck
        taken.append(sequences.take())
        time.sleep(0.001)  # let the writer thread run (no timing is asserted)
    while True:  # hand out the headroom; the request past it must not wait for ever
        try:
            taken.append(sequences.take())
        except StoreUnavailable as exc:
            assert "writing for more than 0.2 s" in str(exc)
            break
    store.gate.set()
    taken += [sequences.take() for _ in range(40)]
    assert taken == list(range(taken[0], taken[0] + len(taken)))
    sequences.close()
    store.inner.close()
    assert FileStore(tmp_path).load()["default"] == taken[-1] + 1


def test_a_reservation_cancelled_by_stepping_down_refuses_cleanly(tmp_path: Path) -> None:
    store = StallingStore(tmp_path)
    sequences = Sequences(store, block_min=16, block_max=16, wait_timeout_s=5)
    sequences.take(1, "b")
    store.gate.clear()
    while not store.stalled.is_set():  # the one reservation thread is stuck on "default"
        sequences.take()
        time.sleep(0.001)  # let the writer thread run (no timing is asserted)
    for _ in range(12):  # "b" queues its reservation behind it
        sequences.take(1, "b")
    sequences.abandon()  # the term is over: the queued reservation is cancelled
    with pytest.raises(StoreUnavailable, match="cancelled"):
        while True:
            sequences.take(1, "b")
    store.gate.set()
