"""What a run records is what the checker sees: no value a worker received may vanish between
the worker's history part and the verdict (a dropped value hides a duplicate)."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chronoid.cli.torture import _report
from chronoid.errors import TortureError
from chronoid.torture.run import Run, RunOptions, Target
from tests.support import tcp_server


def _op(process: str, invoke_ns: int, value: int) -> str:
    record = {
        "type": "op",
        "process": process,
        "op": "getseq",
        "key": "default",
        "invoke_ns": invoke_ns,
        "complete_ns": invoke_ns + 1000,
        "status": "ok",
        "value": value,
    }
    return json.dumps(record) + "\n"


def _run(tmp_path: Path) -> Run:
    options = RunOptions(time_s=1, ops=0, seed=0, scenario=None, out_dir=tmp_path, plot=False)
    supervisor: Any = SimpleNamespace(scratch=tmp_path)
    return Run("serve", options, Target.resolve(None), supervisor)


def test_a_corrupt_line_inside_a_part_is_refused_not_dropped(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run.faults.close()
    # c1's second line is garbled (a disk error, a stray write): it may hold the value that
    # c0 got too, so the verdict must not be a PASS on what is left.
    (run.parts_dir / "c0.jsonl").write_text(_op("c0", 1000, 1) + _op("c0", 5000, 2))
    (run.parts_dir / "c1.jsonl").write_text(
        _op("c1", 2000, 3) + _op("c1", 6000, 2)[:40] + "#garbage\n" + _op("c1", 9000, 4)
    )
    with pytest.raises(TortureError, match=r"c1\.jsonl.*line 2"):
        run.finish({"*": ["unique", "increasing", "realtime"]})


def test_a_half_written_last_line_is_named_in_the_verdict(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run.faults.close()
    # c1 was killed while it wrote the line of a value it had received: that value is not
    # known, so the verdict says a line was lost rather than pass in silence.
    (run.parts_dir / "c0.jsonl").write_text(_op("c0", 1000, 1) + _op("c0", 5000, 2))
    (run.parts_dir / "c1.jsonl").write_text(_op("c1", 2000, 3) + _op("c1", 6000, 2)[:60])
    result = run.finish({"*": ["unique", "increasing", "realtime"]})
    assert "c1.jsonl: a half-written last line" in result.report


def test_lease_worker_records_the_ids_it_has_when_the_generator_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chronoid.modes
    from chronoid.torture import worker

    class Breaks:
        """Hands out three IDs, then fails with an error that is not a ChronoidError (a
        registry client's own exception escaping, a bug)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.values = iter((10, 11, 12))

        def next_id(self) -> int:
            for value in self.values:
                return value
            raise RuntimeError("registry client blew up")

        def close(self) -> None:
            pass

    monkeypatch.setattr(chronoid.modes, "LeaseGenerator", Breaks)
    monkeypatch.setattr(chronoid.modes, "parse_registry_url", lambda url: url)
    part = tmp_path / "mc0.1.jsonl"
    argv = ["lease", "--history", str(part), "--stop-file", str(tmp_path / "stop")]
    argv += ["--process", "mc0.1", "--key", "modec", "--registry", "redis://x", "--batch-ms", "1e6"]
    args = worker.parse_args(argv)
    with pytest.raises(RuntimeError):
        worker.run_lease(args)
    records = [json.loads(line) for line in part.read_text().splitlines()]
    assert [r["runs"] for r in records if r["status"] == "ok"] == [[[10, 3]]]


def _resp_commands(buffer: bytes) -> tuple[list[list[bytes]], bytes]:
    """The complete RESP arrays at the start of ``buffer``, and what is left."""
    commands: list[list[bytes]] = []
    while buffer.startswith(b"*"):
        head, sep, rest = buffer.partition(b"\r\n")
        if not sep:
            break
        args: list[bytes] = []
        for _ in range(int(head[1:])):
            size_line, sep, rest = rest.partition(b"\r\n")
            size = int(size_line[1:]) if sep else -1
            if size < 0 or len(rest) < size + 2:
                return commands, buffer
            args.append(rest[:size])
            rest = rest[size + 2 :]
        commands.append(args)
        buffer = rest
    return commands, buffer


@contextlib.contextmanager
def _fake_sequencer(reply: Callable[[int], bytes], answers: int | None = None) -> Iterator[int]:
    """A RESP server on a spare port (yields it): ``+OK`` to every command but GETSEQ,
    ``reply(n)`` to a connection's n-th GETSEQ; after ``answers`` GETSEQ replies (if given)
    it drops the connection once it has handled what it read."""

    def serve(conn: socket.socket) -> None:
        buffer, answered = b"", 0
        while (answers is None or answered < answers) and (data := conn.recv(65536)):
            commands, buffer = _resp_commands(buffer + data)
            for command in commands:
                if command[0].upper() != b"GETSEQ":
                    conn.sendall(b"+OK\r\n")
                elif answers is None or answered < answers:
                    answered += 1
                    conn.sendall(reply(answered))

    with tcp_server(serve) as port:
        yield port


@pytest.fixture
def half_pipeline_port() -> Iterator[int]:
    """A server that answers the first 4 GETSEQ of a connection (1, 2, 3, 4), then drops it:
    a pipeline of 8 loses its link after half its replies have arrived."""
    with _fake_sequencer(lambda n: b":%d\r\n" % n, answers=4) as port:
        yield port


def test_pipeline_replies_received_before_the_link_dropped_are_recorded(
    tmp_path: Path, half_pipeline_port: int
) -> None:
    from chronoid.torture import worker

    part = tmp_path / "c0.jsonl"
    argv = ["sequencer", "--history", str(part), "--stop-file", str(tmp_path / "stop")]
    argv += ["--process", "c0", "--ports", str(half_pipeline_port), "--mode", "pipelined"]
    argv += ["--ops", "8", "--timeout-s", "2"]
    worker.run_sequencer(worker.parse_args(argv))
    records = [json.loads(line) for line in part.read_text().splitlines()]
    assert sorted(r["value"] for r in records if r["status"] == "ok") == [1, 2, 3, 4]
    assert len(records) == 8
    assert {r["status"] for r in records if r["status"] != "ok"} == {"info"}


@pytest.fixture
def garbling_port() -> Iterator[int]:
    """A server that answers GETSEQ with 1, 2, 3, then with a reply no client can read as a
    value (a bulk string): the worker dies of it, after its reply had come."""
    with _fake_sequencer(lambda n: b":%d\r\n" % n if n <= 3 else b"$3\r\nabc\r\n") as port:
        yield port


def test_a_worker_that_died_of_an_error_fails_the_run(tmp_path: Path, garbling_port: int) -> None:
    options = RunOptions(time_s=1, ops=0, seed=0, scenario=None, out_dir=tmp_path, plot=False)
    with Run.open("serve", options) as run:
        child = run.worker("sequencer", "c0", "--ports", str(garbling_port))
        child.process.wait(timeout=30)
        run.stop_workers([child])
        result = run.finish({"*": ["unique", "increasing", "realtime"]})
    assert result.verdict.values_checked == 3
    assert "c0 exited with status 1" in result.report
    assert _report(result) == 1  # the exit status of `chronoid torture`


def test_a_second_run_on_the_same_out_directory_is_refused(tmp_path: Path) -> None:
    # Two runs on one --out (twice the default ./chronoid-torture-serve): the second deleted
    # the first's parts, and the first then judged the second's history, not its own.
    options = RunOptions(time_s=1, ops=0, seed=0, scenario=None, out_dir=tmp_path, plot=False)
    with Run.open("serve", options) as first:
        (first.parts_dir / "c0.jsonl").write_text(_op("c0", 1000, 1))
        with pytest.raises(TortureError, match="in use by another run"), Run.open("serve", options):
            pass
        assert (first.parts_dir / "c0.jsonl").exists()
    with Run.open("serve", options):  # free again once the first has ended
        pass


def test_a_reset_after_the_request_is_unknown_even_on_a_port_with_111_in_it(
    tmp_path: Path,
) -> None:
    import redis

    from chronoid.torture import worker

    argv = ["sequencer", "--history", str(tmp_path / "c0.jsonl"), "--stop-file", "stop"]
    route = worker.Route(worker.parse_args([*argv, "--process", "c0", "--ports", "41119"]))
    # The request went out, the reply was lost: the server may have handed values out.
    reset = redis.ConnectionError("Error while reading from 127.0.0.1:41119 : (104, 'reset')")
    assert route.failed(reset) == "info"
    refused = redis.ConnectionError("Error 111 connecting to 127.0.0.1:41119. Connection refused.")
    assert route.failed(refused) == "fail"
