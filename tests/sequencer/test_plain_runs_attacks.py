"""Attacks on the general path's runs of plain ``GETSEQ`` (``Parser.plain_run``,
``Dispatcher.plain_run``) through real servers on real sockets: mixed deep pipelines cut
anywhere, a failing store, kill -9, the metrics and a leader whose lease ends."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import random
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chronoid.lease.keeper import margin_ms
from chronoid.sequencer.protocol import RESP_GETSEQ as PLAIN
from chronoid.torture.etcd_cluster import EtcdCluster
from chronoid.torture.failover import make_members, wait_for_leader
from tests.sequencer.conftest import StartServer, exchange
from tests.sequencer.test_fast_path import Line, metrics, values
from tests.support import free_port, rss_kib, self_signed_certificate, tiny_tmpfs

NOAUTH = b"-NOAUTH Authentication required."


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path) as cluster:
        yield cluster


_ONE_GETSEQ = {
    3: (b"GETSEQ\r\n", 1),
    4: (b"GETSEQ 5\r\n", 5),
    5: (b"*2\r\n$6\r\nGETSEQ\r\n$1\r\n3\r\n", 3),
}
"""The single GETSEQ forms of :func:`_mixed_pipeline` (by its kind): the bytes, the values."""


def _mixed_pipeline(rng: random.Random, nxt: int) -> tuple[bytes, list[bytes], int, int]:
    """A pipeline of runs and other commands, its replies, the next value and GETSEQs sent."""
    data, expected, getseqs = [], [], 0
    for _ in range(rng.randint(1, 12)):
        kind = rng.randrange(9)
        if kind <= 2:
            k = rng.choice([2, 3, 1023, 1024, 1025, rng.randint(2, 3000)])
            data.append(PLAIN * k)
            expected += values(nxt, k)
            nxt += k
            getseqs += k
        elif kind in _ONE_GETSEQ:
            command, count = _ONE_GETSEQ[kind]
            data.append(command)
            expected.append(b":%d" % nxt)
            nxt += count
            getseqs += 1
        elif kind == 6:
            data.append(b"PING\r\n")
            expected.append(b"+PONG")
        elif kind == 7:
            data.append(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
            expected.append(b"+OK")
        else:
            data.append(b"CURRENT\r\n")
            expected.append(b":%d" % nxt)
    return b"".join(data), expected, nxt, getseqs


def _no_id(lines: list[bytes]) -> list[bytes]:
    """HELLO's connection id differs per connection."""
    previous = [b"", *lines[:-1]]
    return [b":id" if b == b"id" else line for b, line in zip(previous, lines, strict=True)]


def _send_cut(line: Line, data: bytes, rng: random.Random, closes: bool) -> None:
    at = 0
    while at < len(data):
        size = rng.choice([1, 7, 15, 16, 17, 100, 4096, 16384, 16385, 70000])
        try:
            line.send(data[at : at + size])
        except (BrokenPipeError, ConnectionResetError):
            assert closes  # after QUIT or a protocol error the server closes: fine
            return
        at += size
        if rng.random() < 0.2:
            time.sleep(0.001)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_mixed_deep_pipelines_cut_anywhere_match_a_model(
    start_server: StartServer, loop: str
) -> None:
    metrics_port = free_port()
    srv = start_server(
        "--event-loop", loop, "--metrics-port", str(metrics_port),
        env={"CHRONOID_PASSWORD": "pw"},
    )  # fmt: skip
    hello = exchange(srv.port, b"HELLO 3 AUTH default pw\r\nQUIT\r\n").split(b"\r\n")[:-2]
    assert hello[0].startswith(b"%")
    rng = random.Random(20261202)
    nxt, getseqs, issued = 1, 0, 0
    for case in range(150):
        with Line(srv.port) as line:
            pre = rng.choice([0, 0, 2, 1500])
            via_hello = rng.random() < 0.3
            head = PLAIN * pre + (b"HELLO 3 AUTH default pw\r\n" if via_hello else b"AUTH pw\r\n")
            data, expected, after, sent = _mixed_pipeline(rng, nxt)
            ending = rng.randrange(3)
            tail = b""
            if ending == 1:
                tail = b"QUIT\r\n" + PLAIN * rng.randint(2, 2000)
                expected.append(b"+OK")
            elif ending == 2:
                tail = b"*1\r\n$x\r\n" + PLAIN * rng.randint(2, 2000)
                expected.append(b"-ERR Protocol error: invalid bulk length")
            _send_cut(line, head + data + tail, rng, closes=ending != 0)
            want = [NOAUTH] * pre + (hello if via_hello else [b"+OK"]) + expected
            got = _no_id(line.replies(len(want)))
            assert got == _no_id(want), (case, len(got), len(want))
            if ending:
                assert line.closed(), case
            getseqs += pre + sent
            issued += after - nxt
            nxt = after
    assert exchange(srv.port, b"AUTH pw\r\nCURRENT\r\nQUIT\r\n").split(b"\r\n")[1] == (b":%d" % nxt)
    page = metrics(metrics_port)
    assert page['chronoid_sequencer_requests_total{command="GETSEQ"}'] == getseqs
    assert page["chronoid_sequencer_values_issued_total"] == issued
    print(loop, "GETSEQ commands", getseqs, "values", issued)


def test_every_cut_around_run_boundaries(start_server: StartServer) -> None:
    srv = start_server()
    size = len(PLAIN)
    pipeline = PLAIN * 1030 + b"PING\r\n" + PLAIN * 1030 + b"GETSEQ\r\n" + PLAIN * 3
    replies = 1030 + 1 + 1030 + 1 + 3
    marks = [size, 1024 * size, 1030 * size, 1030 * size + 6, 2054 * size + 6, 2060 * size + 6]
    cuts = sorted({c for m in marks for c in range(m - 18, m + 19) if 0 < c < len(pipeline)})
    nxt = 1
    with Line(srv.port) as line:
        for cut in cuts:
            line.send(pipeline[:cut])
            time.sleep(0.003)
            line.send(pipeline[cut:])
            expected = [*values(nxt, 1030), b"+PONG", *values(nxt + 1030, 1034)]
            assert line.replies(replies) == expected, cut
            nxt += 2064


def _flood(port: int, stop: threading.Event, got: list[bytes], depth: int) -> None:
    try:
        with Line(port, timeout_s=20) as line:
            while not stop.is_set():
                replies = line.ask(PLAIN * depth, depth)
                got.extend(replies)
                if len(replies) < depth:
                    return
    except OSError:
        return


def _ints(replies: list[bytes]) -> list[int]:
    return [int(r[1:]) for r in replies if r[:1] == b":"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only)."""
    with tiny_tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"x" * size) > 0:
                    pass
    finally:
        os.close(fd)


def test_a_full_disk_during_runs_then_kill_9_repeats_nothing(
    start_server: StartServer, small_disk: Path
) -> None:
    data_dir = small_disk / "data"
    srv = start_server(data_dir=data_dir)
    stop = threading.Event()
    gots: list[list[bytes]] = [[] for _ in range(4)]
    threads = [
        threading.Thread(target=_flood, args=(srv.port, stop, got, depth))
        for got, depth in zip(gots, [1500, 2048, 3000, 5000], strict=True)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    filler = small_disk / "filler"
    _fill(filler)  # reservations now fail (ENOSPC)
    time.sleep(2.5)
    errors_seen = [r for got in gots for r in got if r[:1] == b"-"]
    filler.unlink()
    time.sleep(1.5)  # retries succeed again
    srv.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(30)
    issued = [v for got in gots for v in _ints(got)]
    assert len(issued) == len(set(issued)), "a value twice"
    for got in gots:
        mine = _ints(got)
        assert mine == sorted(mine)
    assert errors_seen, "the full disk was never noticed"
    assert all(e.startswith(b"-ERR reservation failed") for e in errors_seen), errors_seen[:3]
    # Every value handed out is below a durable watermark: the restart starts above them all.
    again = start_server(data_dir=data_dir)
    with Line(again.port) as line:
        after = _ints(line.ask(PLAIN * 3000, 3000))
    assert len(after) == 3000 and min(after) > max(issued), (min(after), max(issued))
    print("values checked", len(issued) + 3000, "errors", len(errors_seen))


@pytest.mark.parametrize(("depths", "gap_s"), [((1100, 2048, 5000), 0.0), ((1100,), 0.05)])
def test_a_leader_losing_its_lease_under_deep_runs_stops_by_its_deadline(
    etcd_cluster: EtcdCluster, tmp_path: Path, depths: tuple[int, ...], gap_s: float
) -> None:
    # Three connections pipeline 1,100-5,000 plain GETSEQs per read (the general path's
    # runs) while every etcd member is SIGSTOPped for 3 s: no value after the lease's
    # deadline, none twice, each connection's values increasing, issuing again afterwards.
    url = "etcd://" + ",".join(f"{h}:{p}" for h, p in etcd_cluster.endpoints)
    (member,) = make_members(url, "runs", tmp_path, 1, 1.5)
    trusted_s = 1.5 - margin_ms(1500) / 1000
    children = [child for child in etcd_cluster.children if child is not None]
    gots: list[list[tuple[float, bytes]]] = [[] for _ in depths]
    batches: list[tuple[float, float, int, int]] = []
    stop = threading.Event()

    def pipeline(got: list[tuple[float, bytes]], depth: int) -> None:
        with Line(member.port, timeout_s=20) as line:
            while not stop.is_set():
                sent = time.monotonic()
                replies = line.ask(PLAIN * depth, depth)
                arrived = time.monotonic()
                assert len(replies) == depth
                got.extend((sent, reply) for reply in replies)
                batches.append((sent, arrived, depth, sum(r[:1] == b":" for r in replies)))
                time.sleep(gap_s)

    try:
        member.start()
        wait_for_leader([member], 15)
        with Line(member.port) as warm:  # reservations close together: the block grows
            until = time.monotonic() + 0.7
            while time.monotonic() < until:
                assert len(warm.ask(PLAIN * 5000, 5000)) == 5000
        threads = [
            threading.Thread(target=pipeline, args=(got, depth))
            for got, depth in zip(gots, depths, strict=True)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        paused = time.monotonic()
        for child in children:
            child.signal(signal.SIGSTOP)
        time.sleep(3.0)
        for child in children:
            child.signal(signal.SIGCONT)
        resumed = time.monotonic()
        deadline = resumed + 20
        while not all(got and got[-1][1][:1] == b":" for got in gots):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        for child in children:
            child.signal(signal.SIGCONT)
        member.kill_if_running()
    everything: list[int] = []
    for got in gots:
        mine = [int(r[1:]) for _, r in got if r[:1] == b":"]
        assert mine == sorted(mine)
        everything += mine
        refusals = [r for _, r in got if r[:1] != b":"]
        assert all(r.startswith(b"-TRYAGAIN no sequencer leader available") for r in refusals)
    assert len(everything) == len(set(everything)), "a value twice"
    during = [
        when - paused
        for got in gots
        for when, reply in got
        if paused < when < resumed and reply[:1] == b":"
    ]
    for sent, arrived, depth, ok in sorted(batches):
        if paused < sent < resumed and (ok or sent < paused + 1.3):
            print(f"sent {sent - paused:+.3f} arrived {arrived - paused:+.3f} {depth} {ok}")
    # Stamped with the batch's send time: each value was made after it.
    assert during and max(during) < trusted_s, (max(during), trusted_s)
    assert any(r[:1] != b":" for got in gots for _, r in got), "never refused"
    print("values", len(everything), "latest during", max(during), "trusted", trusted_s)


@pytest.mark.parametrize("mode", ["uvloop", "asyncio", "tls-asyncio", "tls-uvloop"])
def test_runs_from_clients_that_never_read_cost_bounded_memory_and_stall_nobody(
    start_server: StartServer, tmp_path: Path, mode: str
) -> None:
    # 200 connections each pipeline 60,000 plain GETSEQs (960 KB: runs for the general path)
    # and never read; a polite client meanwhile asks one GETSEQ at a time. The server stops
    # reading each abuser once its replies back up: RSS bounded, the polite client served.
    args = ["--event-loop", mode.split("-")[-1]]
    context = None
    if mode.startswith("tls"):
        cert, key = self_signed_certificate(tmp_path)
        args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        context = ssl.create_default_context(cafile=str(cert))
    srv = start_server(*args)
    before_kib = rss_kib(srv.process.pid)

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        return sock

    abusers = []
    for _ in range(200):
        sock = connect()
        sock.settimeout(0.05)
        with contextlib.suppress(OSError):  # ssl: SSLWantWriteError or a timeout
            sock.sendall(PLAIN * 60_000)
        abusers.append(sock)
    polite = connect()
    latencies = []
    with polite:
        for _ in range(200):
            started = time.monotonic()
            polite.sendall(b"GETSEQ\r\n")
            reply = polite.recv(100)
            latencies.append(time.monotonic() - started)
            assert reply.startswith(b":") and reply.endswith(b"\r\n"), reply
            time.sleep(0.005)
    grown_kib = rss_kib(srv.process.pid) - before_kib
    for sock in abusers:
        sock.close()
    latencies.sort()
    print(mode, "RSS +", grown_kib, "KiB; polite p50/p99/max", latencies[100], latencies[198],
          latencies[-1])  # fmt: skip
    # TLS costs about 0.8-1.7 MiB per connection that never reads, as much before this
    # change (7a7dbf8: 161-176 MiB for these 200) as after it: the TLS layer's buffers.
    limit_mib = 256 if context is not None else 96
    assert grown_kib < limit_mib * 1024, f"RSS grew by {grown_kib} KiB"
    assert latencies[198] < 0.5


def test_concurrent_runs_and_big_counts_never_overlap_and_metrics_stay_exact(
    start_server: StartServer,
) -> None:
    # Four connections pipeline runs (2-3,000 plain GETSEQs) between GETSEQ 1000000 and
    # GETSEQ 5, so runs meet headroom smaller than themselves and reservations in flight:
    # every value or range handed out is disjoint from all others, increasing per
    # connection, and the metrics count every command and value exactly.
    metrics_port = free_port()
    srv = start_server("--metrics-port", str(metrics_port))
    results: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    commands = [0] * 4

    def client(index: int) -> None:
        rng = random.Random(index)
        spans = results[index]
        with Line(srv.port, timeout_s=30) as line:
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                parts, sizes = [], []
                for _ in range(rng.randint(1, 6)):
                    kind = rng.randrange(4)
                    if kind < 2:
                        k = rng.choice([2, 1024, 1025, rng.randint(2, 3000)])
                        parts.append(PLAIN * k)
                        sizes += [1] * k
                    elif kind == 2:
                        parts.append(b"GETSEQ 1000000\r\n")
                        sizes.append(1_000_000)
                    else:
                        parts.append(b"GETSEQ 5\r\n")
                        sizes.append(5)
                replies = line.ask(b"".join(parts), len(sizes))
                assert len(replies) == len(sizes)
                for reply, size in zip(replies, sizes, strict=True):
                    assert reply[:1] == b":", reply
                    spans.append((int(reply[1:]), size))
                commands[index] += len(sizes)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for spans in results:
        firsts = [first for first, _ in spans]
        assert firsts == sorted(firsts)
    every = sorted(span for spans in results for span in spans)
    for (first, size), (following, _) in itertools.pairwise(every):
        assert first + size <= following, "overlapping values"
    issued = sum(size for _, size in every)
    page = metrics(metrics_port)
    assert page['chronoid_sequencer_requests_total{command="GETSEQ"}'] == sum(commands)
    assert page["chronoid_sequencer_values_issued_total"] == issued
    print("commands", sum(commands), "values", issued)


def test_runs_across_a_paused_then_killed_leader_never_repeat_a_value(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    # Two members; three clients pipeline 2,048 plain GETSEQs per read at both members at
    # once (the standby answers -MOVED, the leader runs). The leader is SIGSTOPped past its
    # lease (the other takes over), resumed (its backlog of runs meets a lease long gone),
    # then the new leader is killed -9 (the first takes over again). No value twice, each
    # connection's values increasing, and every value of a later term above the earlier ones.
    url = "etcd://" + ",".join(f"{h}:{p}" for h, p in etcd_cluster.endpoints)
    members = make_members(url, "flip", tmp_path, 2, 1.5)
    stop = threading.Event()
    got: list[tuple[int, float, float, list[bytes]]] = []  # (port, sent, received, replies)
    lock = threading.Lock()

    def client(member_index: int) -> None:
        port = members[member_index].port
        while not stop.is_set():
            try:
                with Line(port, timeout_s=8) as line:
                    while not stop.is_set():
                        sent = time.monotonic()
                        replies = line.ask(PLAIN * 2048, 2048)
                        with lock:
                            got.append((port, sent, time.monotonic(), replies))
                        if len(replies) < 2048:
                            break
                        if replies[-1][:1] != b":":
                            time.sleep(0.02)
            except OSError:
                time.sleep(0.05)

    try:
        for member in members:
            member.start()
        first = wait_for_leader(members, 15)
        threads = [threading.Thread(target=client, args=(i % 2,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        first.signal(signal.SIGSTOP)
        second = wait_for_leader([m for m in members if m is not first], 15)
        time.sleep(0.7)
        first.signal(signal.SIGCONT)
        time.sleep(0.7)
        second.kill()
        wait_for_leader([first], 15)
        time.sleep(0.7)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        for member in members:
            member.kill_if_running()
    every = [int(r[1:]) for *_, replies in got for r in replies if r[:1] == b":"]
    assert len(every) == len(set(every)), "a value twice"
    for *_, replies in got:
        mine = [int(r[1:]) for r in replies if r[:1] == b":"]
        assert mine == sorted(mine)
    others = {r[:9] for *_, replies in got for r in replies if r[:1] != b":"}
    assert others <= {b"-MOVED 0 ", b"-TRYAGAIN"}, others
    # A batch sent after a batch from the other member had arrived was answered after that
    # member issued: its values must all be above that batch's (take, then check the term).
    spans = []
    for port, sent, arrived, replies in got:
        mine = [int(r[1:]) for r in replies if r[:1] == b":"]
        if mine:
            spans.append((port, sent, arrived, min(mine), max(mine)))
    late = []
    for member in members:
        theirs = sorted((a, hi) for p, _, a, _, hi in spans if p != member.port)
        arrivals = [a for a, _ in theirs]
        highest = list(itertools.accumulate((hi for _, hi in theirs), max))
        for port, sent, _, lo, _ in spans:
            if port == member.port:
                before = bisect.bisect_left(arrivals, sent)
                if before and highest[before - 1] > lo:
                    late.append((port, sent, lo, highest[before - 1]))
    assert not late, (len(late), late[:3])
    print("values", len(every), "batches", len(got), "refusals seen", sorted(others))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_client_that_reads_late_gets_every_run_in_order(
    start_server: StartServer, loop: str
) -> None:
    # 200,000 plain GETSEQs (3.2 MB) then a PING and more runs, sent while the client reads
    # nothing for a second (the server pauses writing, then reading), then read: each value
    # once, in order, the PING in its place.
    srv = start_server("--event-loop", loop)
    with Line(srv.port, timeout_s=30) as line:
        sender = threading.Thread(
            target=line.send, args=(PLAIN * 200_000 + b"PING\r\n" + PLAIN * 5000 + b"GETSEQ\r\n",)
        )
        sender.start()
        time.sleep(1.0)
        got = line.replies(205_002)
        sender.join(30)
    assert got == [*values(1, 200_000), b"+PONG", *values(200_001, 5001)]
