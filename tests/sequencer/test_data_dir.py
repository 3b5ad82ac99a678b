"""The data directory under attack: two servers, a state file deleted, replaced or hand-edited,
the top of the signed 64-bit range. Real ``chronoid serve`` processes, real sockets.

Every test here failed on a95c2b7 (no lock, no watch, lax validation, CURRENT past 2^63-1).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import redis

from chronoid import errors as chronoid_errors
from chronoid.errors import StateFileError, StoreUnavailable
from chronoid.sequencer.store import FileStore
from tests.sequencer.conftest import ServerProcess, StartServer, exchange, wait_for_port
from tests.support import free_port, wait_until

MAX = 2**63 - 1


def take(port: int, count: int, *, errors: list[str] | None = None) -> list[int]:
    """``count`` GETSEQs pipelined on a fresh redis-py connection: the values handed out.

    Error replies raise, unless ``errors`` collects them.
    """
    client = redis.Redis(port=port, socket_timeout=10)
    try:
        pipe = client.pipeline(transaction=False)
        for _ in range(count):
            pipe.execute_command("GETSEQ")
        replies = pipe.execute(raise_on_error=errors is None)
    finally:
        client.close()
    if errors is not None:
        errors += [str(r) for r in replies if isinstance(r, Exception)]
    return [int(r) for r in replies if not isinstance(r, Exception)]


def stored_default(state: Path) -> int:
    """The default sequence's watermark on disk now (-1 while unreadable)."""
    try:
        return int(json.loads(state.read_bytes())["sequences"]["default"])
    except (OSError, ValueError, KeyError):
        return -1


def refused(server: ServerProcess) -> str:
    """Wait for a server that must not start; returns its stderr (one line)."""
    assert server.process.wait(timeout=20) != 0
    lines = server.log().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- one server per data directory ---------------------------------------------------------


def test_a_second_server_on_the_same_data_dir_is_refused_naming_the_holder(
    start_server: StartServer, tmp_path: Path
) -> None:
    first = start_server(data_dir=tmp_path / "data")
    second = start_server(data_dir=tmp_path / "data", wait=False)
    line = refused(second)
    assert str(tmp_path / "data") in line and f"PID {first.process.pid}" in line, line
    assert take(first.port, 3) == [1, 2, 3]  # the first one is untouched


def test_two_servers_racing_to_start_on_one_dir_never_both_issue(
    start_server: StartServer, tmp_path: Path
) -> None:
    for round_ in range(2):
        data = tmp_path / f"data{round_}"
        a = start_server(data_dir=data, wait=False)
        b = start_server(data_dir=data, wait=False)
        # Exactly one stays up; it listens, the other exits with one line.
        wait_until(
            lambda a=a, b=b: a.process.poll() is not None or b.process.poll() is not None,
            "one of the two servers exiting",
            timeout_s=20,
        )
        loser, winner = (a, b) if a.process.poll() is not None else (b, a)
        assert "is in use by another live owner" in refused(loser)
        wait_for_port(winner.port, winner.child)
        assert take(winner.port, 2) == [1, 2]
        winner.stop(signal.SIGKILL)


def test_two_servers_on_the_per_user_default_dir_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHRONOID_PASSWORD"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    ports = [free_port(), free_port()]
    servers: list[ServerProcess] = []
    try:
        for i, port in enumerate(ports):
            servers.append(
                ServerProcess.start(
                    ["--port", str(port)],
                    port=port,
                    data_dir=tmp_path / "state" / "chronoid",
                    log_path=tmp_path / f"serve-{i}.log",
                    env=env,
                    wait=not servers,  # the first one listens; the second must not start
                )
            )
        assert servers[1].process.wait(timeout=20) != 0
        line = servers[1].log().strip()
        assert str(tmp_path / "state" / "chronoid") in line and str(servers[0].process.pid) in line
        assert "\n" not in line
    finally:
        for server in servers:
            server.kill()


def test_a_deleted_lock_file_never_lets_two_servers_issue_the_same_value(
    start_server: StartServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    a = start_server(data_dir=data)
    issued = take(a.port, 10)
    (data / "sequencer.lock").unlink(missing_ok=True)
    b = start_server(data_dir=data, wait=False)
    # Either the first server locked the directory again before the second looked (the
    # second is refused), or the second won it and the first stops above its watermark.
    try:
        wait_for_port(b.port, b.child, 10)
        b_up = True
    except pytest.fail.Exception:
        b_up = False
    errors: list[str] = []
    for _ in range(3):
        for srv in (a, b) if b_up else (a,):
            issued += take(srv.port, 3000, errors=errors)
    assert all("not issuing" in e for e in errors), errors[:3]
    assert len(issued) == len(set(issued)), "a value was handed out twice"


# -- a state file deleted or replaced while running --------------------------------------


def crash_and_restart(start_server: StartServer, srv: ServerProcess) -> ServerProcess:
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    return start_server(data_dir=srv.data_dir, port=srv.port)


def test_state_file_deleted_while_running_is_written_again_before_a_crash(
    start_server: StartServer,
) -> None:
    srv = start_server()
    state = srv.data_dir / "sequencer.json"
    issued = take(srv.port, 100)
    state.unlink()
    wait_until(state.exists, "the state file again", timeout_s=5)  # noticed within a second
    restarted = crash_and_restart(start_server, srv)
    after = take(restarted.port, 100)
    assert min(after) > max(issued), "the restart handed out a value again"


def test_a_data_dir_deleted_while_running_is_written_again_before_a_crash(
    start_server: StartServer,
) -> None:
    srv = start_server()
    issued = take(srv.port, 100)
    shutil.rmtree(srv.data_dir)  # rm -rf: state, lock and marker
    wait_until((srv.data_dir / "sequencer.initialized").exists, "the marker", timeout_s=5)
    issued += take(srv.port, 100)  # it still owns the directory and issues
    restarted = crash_and_restart(start_server, srv)
    assert min(take(restarted.port, 100)) > max(issued), "the restart handed out a value again"


def test_state_file_replaced_by_an_older_copy_is_overwritten(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = start_server()
    state = srv.data_dir / "sequencer.json"
    old_copy = tmp_path / "backup.json"
    shutil.copy2(state, old_copy)  # watermark of the first block
    issued = take(srv.port, 5000)  # several blocks later
    before = json.loads(state.read_text())["sequences"]["default"]
    shutil.copy2(old_copy, state)  # in place, mtime restored: same inode, older bytes
    wait_until(lambda: stored_default(state) >= before, "the stored value", timeout_s=5)
    restarted = crash_and_restart(start_server, srv)
    second = take(restarted.port, 100)
    assert min(second) > max(issued)
    # And a copy renamed over it (a new inode), once more.
    os.replace(shutil.copy(old_copy, tmp_path / "again.json"), state)
    wait_until(lambda: stored_default(state) > max(second), "a higher value", timeout_s=5)
    last = crash_and_restart(start_server, restarted)
    assert min(take(last.port, 10)) > max(second)


def test_an_older_copy_restored_while_the_server_was_stopped_does_not_rewind_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = start_server()
    state = srv.data_dir / "sequencer.json"
    shutil.copy2(state, tmp_path / "backup.json")  # the first block's watermark
    issued = take(srv.port, 5000)
    assert srv.stop() == 0
    shutil.copy2(tmp_path / "backup.json", state)  # "restore from backup"
    restarted = start_server(data_dir=srv.data_dir)
    assert take(restarted.port, 1)[0] > max(issued)


def test_a_used_data_dir_without_state_refuses_to_start_until_told_where_to_resume(
    start_server: StartServer,
) -> None:
    srv = start_server()
    issued = take(srv.port, 50)
    client = redis.Redis(port=srv.port, socket_timeout=10)
    named = [client.execute_command("GETSEQ", 1, "tx") for _ in range(5)]
    client.close()
    assert srv.stop() == 0
    (srv.data_dir / "sequencer.json").unlink()
    line = refused(start_server(data_dir=srv.data_dir, wait=False))
    assert "sequencer.json is missing" in line and "--initial" in line, line
    resumed = start_server("--initial", "1000", data_dir=srv.data_dir)
    assert take(resumed.port, 1) == [1000] and max(issued) < 1000
    client = redis.Redis(port=resumed.port, socket_timeout=10)
    assert client.execute_command("GETSEQ", 1, "tx") > max(named)  # from the marker's copy
    client.close()


# -- the top of the range ----------------------------------------------------------------


def test_the_last_value_is_handed_out_once_then_every_request_is_refused(
    start_server: StartServer,
) -> None:
    srv = start_server("--initial", str(MAX - 2))
    client = redis.Redis(port=srv.port, socket_timeout=10)
    with pytest.raises(redis.ResponseError, match="only 3 values left"):
        client.execute_command("GETSEQ", 4)
    assert client.execute_command("CURRENT") == MAX - 2  # the refusal consumed nothing
    assert client.execute_command("GETSEQ", 3) == MAX - 2
    for command in (("CURRENT",), ("GETSEQ",), ("GETSEQ", 1)):
        with pytest.raises(redis.ResponseError, match="exhausted"):
            client.execute_command(*command)
    assert b"seq_default:next=exhausted," in exchange(srv.port, b"INFO\r\nQUIT\r\n")
    client.close()
    # A clean stop stores the watermark 2^63; the server starts on it again.
    assert srv.stop() == 0
    again = start_server(data_dir=srv.data_dir)
    client = redis.Redis(port=again.port, socket_timeout=10)
    with pytest.raises(redis.ResponseError, match="exhausted"):
        client.execute_command("GETSEQ")
    assert client.execute_command("GETSEQ", 1, "other") == 1  # other names still work
    assert client.execute_command("CURRENT", "other") == 2
    client.close()


def test_a_stored_watermark_of_2_63_starts_after_a_crash(start_server: StartServer) -> None:
    srv = start_server("--initial", str(MAX))
    assert take(srv.port, 1) == [MAX]
    restarted = crash_and_restart(start_server, srv)
    with pytest.raises(redis.ResponseError, match="exhausted"):
        take(restarted.port, 1)


# -- the state file is not trusted -------------------------------------------------------

BAD_STATES = {
    "negative": b'{"version": 1, "sequences": {"default": -5}}',
    "zero": b'{"version": 1, "sequences": {"default": 0}}',
    "bool": b'{"version": 1, "sequences": {"default": true}}',
    "string": b'{"version": 1, "sequences": {"default": "12345"}}',
    "float": b'{"version": 1, "sequences": {"default": 1e3}}',
    "above 2^63": b'{"version": 1, "sequences": {"default": 9223372036854775809}}',
    "version 99": b'{"version": 99, "sequences": {"default": 5}}',
    "version true": b'{"version": true, "sequences": {"default": 5}}',
    "bad name": b'{"version": 1, "sequences": {"../../x y": 5}}',
    "no version": b'{"sequences": {"default": 5}}',
    "extra key": b'{"version": 1, "sequences": {}, "x": 1}',
    "duplicate name": b'{"version": 1, "sequences": {"default": 9000, "default": 5}}',
    "list": b'{"version": 1, "sequences": [5]}',
    "empty": b"",
    "zero bytes of spaces": b"   \n",
    "truncated": b'{"version": 1, "sequences": {"default": 10',
}


@pytest.mark.parametrize("raw", list(BAD_STATES.values()), ids=list(BAD_STATES))
def test_an_invalid_state_file_is_refused_saying_where(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "sequencer.json").write_bytes(raw)
    with pytest.raises(StateFileError, match="sequencer.json is not a valid") as caught:
        FileStore(tmp_path).load()
    assert str(tmp_path / "sequencer.json") in str(caught.value)


def test_the_server_refuses_an_invalid_state_file_in_one_line(
    start_server: StartServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sequencer.json").write_bytes(BAD_STATES["bool"])
    line = refused(start_server(data_dir=data, wait=False))
    assert "watermark True of sequence 'default'" in line and str(data) in line, line


def test_leftover_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    for name in ("sequencer.json.tmp", "sequencer.json.tmp.1234"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "unrelated.tmp.1").write_bytes(b"keep")
    store = FileStore(tmp_path)
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sequencer.lock", "unrelated.tmp.1"]


def test_the_watch_thread_restores_the_file_without_any_reservation(tmp_path: Path) -> None:
    store = FileStore(tmp_path, watch_interval_s=0.05)
    store.load()
    store.reserve("default", 777)
    (tmp_path / "sequencer.json").unlink()
    wait_until((tmp_path / "sequencer.json").exists, "the state file", timeout_s=5)
    assert json.loads((tmp_path / "sequencer.json").read_text())["sequences"] == {"default": 777}
    assert store.rewrites == 1
    store.close()


def test_a_store_whose_directory_was_taken_over_never_writes_again(tmp_path: Path) -> None:
    old = FileStore(tmp_path)
    old.load()
    old.reserve("default", 2000)
    (tmp_path / "sequencer.lock").unlink()
    newcomer = FileStore(tmp_path)  # finds no lock held: it owns the directory now
    assert newcomer.load() == {"default": 2000}
    newcomer.reserve("default", 3000)
    with pytest.raises(StoreUnavailable, match="not issuing above the last watermark"):
        old.reserve("default", 4000)
    old.check()  # the watcher must not put its older state back either
    assert stored_default(tmp_path / "sequencer.json") == 3000
    newcomer.close()
    old.close()


def test_a_deleted_lock_file_is_taken_again_when_nobody_else_did(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.load()
    store.reserve("default", 10)
    (tmp_path / "sequencer.lock").unlink()
    store.check()
    assert (tmp_path / "sequencer.lock").read_text().strip() == str(os.getpid())
    with pytest.raises(chronoid_errors.StateInUse, match=f"PID {os.getpid()}"):
        FileStore(tmp_path)
    store.reserve("default", 20)
    store.close()
