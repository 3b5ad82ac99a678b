"""The durable-file helper: held lock, atomic write, leftovers, identity."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from chronoid import durable
from chronoid.durable import HeldLock, identity_of, remove_leftovers, write_atomically
from chronoid.errors import StateInUse


def _hold(path: str, ready: Any) -> None:
    lock = HeldLock(path, owner="test")
    ready.set()
    signal.pause()
    lock.close()


def test_a_lock_held_by_another_process_is_refused_naming_its_pid(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "x.lock"), ready))
    holder.start()
    try:
        assert ready.wait(20)
        with pytest.raises(StateInUse, match=f"the thing is in use .*PID {holder.pid}, holding"):
            HeldLock(tmp_path / "x.lock", owner="the thing")
    finally:
        holder.kill()
        holder.join(10)
    # kill -9 releases it: the kernel drops the lock with the process.
    lock = HeldLock(tmp_path / "x.lock", owner="the thing")
    assert (tmp_path / "x.lock").read_text() == f"{os.getpid()}\n"
    lock.close()
    lock.close()  # idempotent
    HeldLock(tmp_path / "x.lock", owner="the thing").close()


def test_a_second_lock_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    first = HeldLock(tmp_path / "x.lock", owner="dir")
    with pytest.raises(StateInUse):
        HeldLock(tmp_path / "x.lock", owner="dir")
    assert first.guards_path()
    (tmp_path / "x.lock").unlink()
    assert not first.guards_path()
    assert first.retake() and first.guards_path()
    first.close()


def test_an_atomic_write_survives_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = []

    def one_byte(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:1]))

    monkeypatch.setattr(durable.os, "write", one_byte)
    payload = b'{"version": 1, "sequences": {"default": 12345}}'
    identity = write_atomically(tmp_path / "s.json", payload)
    assert (tmp_path / "s.json").read_bytes() == payload
    assert len(calls) == len(payload)
    assert identity == identity_of(tmp_path / "s.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_atomically(tmp_path / "s.json", b"old")

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(tmp_path / "s.json", b"new")
    assert (tmp_path / "s.json").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_identity_tells_an_in_place_copy_from_the_file_written(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    written = write_atomically(path, b"12345")
    stat = path.stat()
    path.write_bytes(b"12345")  # same bytes, same inode, same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime put back, as cp -p does
    assert identity_of(path) != written
    assert identity_of(tmp_path / "missing") is None


def test_leftovers_are_only_the_temporary_files_of_that_path(tmp_path: Path) -> None:
    for name in ("s.json.tmp", "s.json.tmp.1", "s.json.tmp.22", "t.json.tmp.1", "s.json"):
        (tmp_path / name).write_bytes(b"")
    removed = remove_leftovers(tmp_path / "s.json")
    assert sorted(p.name for p in removed) == ["s.json.tmp", "s.json.tmp.1", "s.json.tmp.22"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "t.json.tmp.1"]


def test_planted_symlinks_never_redirect_a_write(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "x.lock").symlink_to(victim)
    with pytest.raises(OSError):
        HeldLock(tmp_path / "x.lock", owner="dir")
    (tmp_path / f"s.json.tmp.{os.getpid()}").symlink_to(victim)
    remove_leftovers(tmp_path / "s.json")  # removes the link, not what it points to
    (tmp_path / f"s.json.tmp.{os.getpid()}").symlink_to(victim)
    with pytest.raises(OSError):
        write_atomically(tmp_path / "s.json", b"data")
    assert victim.read_bytes() == b"precious"
