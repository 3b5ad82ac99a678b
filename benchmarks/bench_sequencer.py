"""``chronoid serve`` side by side with Redis 7 ``INCR`` on the same machine, in one run.

Run ``.venv/bin/python benchmarks/bench_sequencer.py [--quick]``. It prints Markdown and
writes it to ``benchmarks/results/sequencer.md`` (the README quotes that file).

It starts its own servers on free ports, each with its state in one temporary directory
(same filesystem for all, so fsync costs compare): ``chronoid serve`` (durable: watermarks
reserved ahead with fsync), ``redis-server`` with defaults but no RDB snapshots, and
``redis-server --appendonly yes --appendfsync always`` (the durable peer).

1. **redis-benchmark**: ``-n 200000 GETSEQ`` vs ``INCR k`` at ``-c 50 -P 1``, ``-c 1 -P 1``
   and ``-c 50 -P 16``; rounds interleaved in alternating order, medians of requests/s, and
   the server's CPU time per request (user + system, from ``/proc/PID/stat``).
2. **redis-py**: ``GETSEQ 1000`` vs ``INCRBY k 1000``, one connection: values/s.
3. **Range cache**: :class:`chronoid.sequencer.client.RangeCache` values/s in one thread.
4. **Restart after kill -9**: time from SIGKILL to the first ``GETSEQ`` reply of a new
   process started right away (Python start-up included).
5. **Latency**: p50, p99, p99.9 and max of ``GETSEQ`` vs ``INCR`` at ``-c 50 -P 1`` and
   ``-c 1 -P 1`` (redis-benchmark's latency summary; p99.9 is the first row at or above
   99.9 % of its percentile table, an upper bound), beside the floor: ``floor_server.py``,
   an empty uvloop server that answers every request with a fixed ``:1`` (what any Python
   server reaches here at best). Five rounds, each server once per round in rotating order.
6. **Fairness**: a well-behaved client (one ``GETSEQ`` at a time, 1 ms apart) measures its
   own latency while, on other connections, an abuser (a) creates 999 names in one pipeline,
   (b) pipelines 500 × ``GETSEQ 1000000``, (c) keeps four unfinished 64 MiB arrays going,
   (d) opens 1,000 TLS connections that never handshake, (e) 200 connections each pipeline
   15,000 plain ``GETSEQ`` at once and read their replies; with the server's RSS growth
   (sampled every 20 ms). Each scenario on a fresh server.
7. **Before/after**: ``-c 50 -P 16`` on this tree and on ``--baseline`` (a git ref, default
   ``a95c2b7``: the code before the hardening of issue 13), nine rounds in rotating order,
   judged by the median of the per-round ratios; and the fairness scenarios on the baseline
   too (``--no-baseline`` skips it).

The machine is shared, so absolute figures wander; read the ratios.

``--only latency`` runs part 5 alone and prints it (no file written): the quick check of
the latency goals. ``--only deep`` runs scenario (e) against Redis ``INCR`` side by side
(printed only): the time to answer 200 deep pipelines and a polite client's latency meanwhile.

``--instructions`` measures instead what the noise cannot move: the user-space instructions
each server executes per request (valgrind's callgrind, counters zeroed after a warm-up and
dumped after ``redis-benchmark -n N``), for ``chronoid serve`` (uvloop and asyncio, this tree
and ``--instructions-baseline``), the floor server and Redis ``INCR``, at ``-c 50 -P 1`` and
``-c 1 -P 1``, and ``-c 50 -P 16`` for this tree and ``--baseline`` (the hardening's
cost, which request rates here are too noisy to show).
Kernel time (the socket system calls, about the same for every server) is not in it. It
writes ``benchmarks/results/sequencer-instructions.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from chronoid.sequencer.client import RangeCache, SequencerClient
from chronoid.torture.pipelines import pipeline_all_at_once
from chronoid.torture.processes import free_port
from environment import measured_line

ROOT = Path(__file__).resolve().parent.parent
FLOOR_SERVER = Path(__file__).resolve().parent / "floor_server.py"
RESULTS = ROOT / "benchmarks" / "results" / "sequencer.md"
INSTRUCTIONS = ROOT / "benchmarks" / "results" / "sequencer-instructions.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def wait_port(port: int, process: subprocess.Popen[bytes], limit_s: float = 15.0) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"server did not listen on {port} within {limit_s} s")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process is gone
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextmanager
def chronoid_server(workdir: Path, name: str, src: Path | None, *extra: str) -> Iterator[Server]:
    """One ``chronoid serve`` from this tree, or from the source tree ``src``."""
    port = free_port()
    env = dict(os.environ)
    env.pop("CHRONOID_PASSWORD", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, "-m", "chronoid", "serve", "--port", str(port), "--data-dir",
           str(workdir / name), "--log-level", "ERROR", *extra]  # fmt: skip
    process = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_port(port, process)
        yield Server(name, port, process)
    finally:
        stop(process, 15)


@contextmanager
def servers(workdir: Path) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        port = free_port()
        chronoid_cmd = [sys.executable, "-m", "chronoid", "serve", "--port", str(port),
                        "--data-dir", str(workdir / "chronoid"), "--log-level", "WARNING",
                        "--max-connections", "10000"]  # fmt: skip
        started["chronoid"] = Server(
            "chronoid", port, subprocess.Popen(chronoid_cmd, stderr=subprocess.DEVNULL)
        )
        port = free_port()
        floor_cmd = [sys.executable, str(FLOOR_SERVER), str(port)]
        started["floor"] = Server("floor", port, subprocess.Popen(floor_cmd))
        for name, extra in (
            ("redis", ["--appendonly", "no"]),
            ("redis-always", ["--appendonly", "yes", "--appendfsync", "always"]),
        ):
            port = free_port()
            cmd = redis_command(port, workdir / name, *extra)
            started[name] = Server(name, port, subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        for server in started.values():
            wait_port(server.port, server.process)
        yield started
    finally:
        for server in started.values():
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()


def redis_benchmark(
    server: Server, n: int, clients: int, pipeline: int, command: list[str]
) -> tuple[float, float]:
    """(requests/s, server CPU µs per request)."""
    cpu = server.cpu_seconds()
    done = subprocess.run(
        ["redis-benchmark", "-p", str(server.port), "-n", str(n), "-c", str(clients),
         "-P", str(pipeline), "--csv", *command],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    cpu = server.cpu_seconds() - cpu
    lines = [line for line in done.stdout.splitlines() if line.startswith('"')]
    rps = float(lines[-1].split(",")[1].strip('"'))
    return rps, cpu / n * 1e6


@dataclass
class Latency:
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def redis_latency(server: Server, n: int, clients: int, command: list[str]) -> Latency:
    """requests/s and latency percentiles (ms) from redis-benchmark's report."""
    done = subprocess.run(
        ["redis-benchmark", "-p", str(server.port), "-n", str(n), "-c", str(clients),
         "-P", "1", *command],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    text = done.stdout.replace("\r", "\n")
    table = [
        (float(m.group(1)), float(m.group(2)))
        for m in re.finditer(r"^\s*([\d.]+)% <= ([\d.]+) milliseconds", text, re.M)
    ]
    split = text.find("Cumulative distribution")
    table = table[: len(re.findall(r"% <= ", text[:split]))] if split > 0 else table
    p999 = next(ms for pct, ms in table if pct >= 99.9)
    summary = text[text.index("latency summary") :].splitlines()
    values = [float(v) for v in summary[2].split()]  # avg min p50 p95 p99 max
    rps = float(re.search(r"throughput summary: ([\d.]+)", text).group(1))  # type: ignore[union-attr]
    return Latency(rps, values[2], values[4], p999, values[5])


LATENCY_SERVERS = (
    ("chronoid", "chronoid GETSEQ", ["GETSEQ"]),
    ("redis", "Redis INCR", ["INCR", "k"]),
    ("floor", "floor: empty uvloop server, fixed `:1`", ["GETSEQ"]),
)


def bench_latency(s: dict[str, Server], n: int, rounds: int) -> list[tuple[str, list[Latency]]]:
    """(setting, [chronoid, Redis, floor]) as in :data:`LATENCY_SERVERS`: the median of
    ``rounds`` rounds of each figure, the servers in rotating order within a round (the
    machine's load moves within seconds)."""
    rows = []
    for label, clients in (("-c 50 -P 1", 50), ("-c 1 -P 1", 1)):
        runs: list[list[Latency]] = [[] for _ in LATENCY_SERVERS]
        for i in range(rounds):
            for k in range(len(LATENCY_SERVERS)):
                j = (i + k) % len(LATENCY_SERVERS)
                key, _, command = LATENCY_SERVERS[j]
                runs[j].append(redis_latency(s[key], n, clients, command))
        rows.append((label, [_merge(r) for r in runs]))
    return rows


def _merge(runs: list[Latency]) -> Latency:
    return Latency(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.p999_ms for r in runs),
        statistics.median(r.max_ms for r in runs),
    )


# -- fairness ------------------------------------------------------------------------------


@dataclass
class Fairness:
    scenario: str
    code: str
    p99_ms: float
    max_ms: float
    requests: int
    rss_growth_mib: float
    abuser_got: str


class _Probe:
    """A well-behaved client: one GETSEQ at a time, 1 ms apart, timing each."""

    def __init__(
        self, port: int, context: ssl.SSLContext | None, command: bytes = b"GETSEQ\r\n"
    ) -> None:
        self.command = command
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = (
            context.wrap_socket(sock, server_hostname="127.0.0.1") if context is not None else sock
        )
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        reader = self.sock.makefile("rb")
        while not self.stop.is_set():
            start = time.perf_counter()
            self.sock.sendall(self.command)
            line = reader.readline()
            self.latencies.append(time.perf_counter() - start)
            if not line.startswith(b":"):
                break
            time.sleep(0.001)

    def finish(self) -> list[float]:
        self.stop.set()
        self.thread.join(timeout=60)
        self.sock.close()
        return self.latencies


def _abuse_names(port: int, stop: threading.Event) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"".join(b"GETSEQ 1 abuse%d\r\n" % i for i in range(999)))
        reader = sock.makefile("rb")
        lines = [reader.readline() for _ in range(999)]
    return f"{sum(line.startswith(b':') for line in lines)} names made"


def _abuse_counts(port: int, stop: threading.Event) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"GETSEQ 1000000\r\n" * 500)
        reader = sock.makefile("rb")
        lines = [reader.readline() for _ in range(500)]
    return f"{sum(line.startswith(b':') for line in lines)} × 1,000,000 values"


def _abuse_arrays(port: int, stop: threading.Event) -> str:
    chunk = b"$65536\r\n" + b"x" * 65536 + b"\r\n"
    outcomes: list[str] = []

    def one() -> None:
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(b"*1024\r\n")
                for _ in range(1024):
                    if stop.is_set():
                        break
                    sock.sendall(chunk)
                    sent += len(chunk)
            with contextlib.suppress(OSError):
                sock.settimeout(1)
                outcomes.append(sock.recv(200).decode(errors="replace").strip() or "closed")
        outcomes.append(f"{sent >> 20} MiB sent")

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies = sorted({o for o in outcomes if not o.endswith("sent")})
    sent = max((o for o in outcomes if o.endswith("sent")), default="")
    return f"{'; '.join(replies) or 'nothing'} (up to {sent} each)"


def _abuse_tls(port: int, stop: threading.Event) -> str:
    silent = []
    for _ in range(1000):
        try:
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    time.sleep(6.0)  # past the default 5 s handshake timeout
    closed = 0
    for sock in silent:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        sock.close()
    return f"{len(silent)} opened, {closed} closed by the server within 6 s"


RESP_GETSEQ = b"*1\r\n$6\r\nGETSEQ\r\n"
RESP_INCR = b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"


def _abuse_deep_pipelines(port: int, stop: threading.Event) -> str:
    return deep_pipelines(port, RESP_GETSEQ)


def deep_pipelines(port: int, command: bytes) -> str:
    """200 connections each send ``command`` 15,000 times at once and read their replies as
    they come (well-behaved deep pipelines, as ``redis-benchmark -P`` sends them)."""
    got = pipeline_all_at_once(port, command, 200, 15_000, timeout_s=120)
    errors = sum(got.errors.values())
    return f"{len(got.values):,} values, {errors:,} errors, {got.unfinished} unfinished"


SCENARIOS = {
    "(a) 999 new names in one pipeline": _abuse_names,
    "(b) 500 × GETSEQ 1000000 pipelined": _abuse_counts,
    "(c) four unfinished 64 MiB arrays": _abuse_arrays,
    "(d) 1,000 TLS connections that never handshake": _abuse_tls,
    "(e) 200 connections pipelining 15,000 GETSEQ each": _abuse_deep_pipelines,
}


def bench_fairness(
    workdir: Path, code: str, src: Path | None, cert: Path, key: Path
) -> list[Fairness]:
    results = []
    for index, (scenario, abuse) in enumerate(SCENARIOS.items()):
        tls = scenario.startswith("(d)")
        extra = ["--tls-cert", str(cert), "--tls-key", str(key)] if tls else []
        context = ssl.create_default_context(cafile=str(cert)) if tls else None
        with chronoid_server(workdir, f"fair-{code}-{index}", src, *extra) as server:
            base = rss_kib(server.process.pid)
            peak = [base]
            stop = threading.Event()
            sampler = threading.Thread(
                target=_sample_rss, args=(server.process.pid, peak, stop), daemon=True
            )
            sampler.start()
            probe = _Probe(server.port, context)
            time.sleep(0.5)
            warm = len(probe.latencies)
            try:
                got = abuse(server.port, stop)
            except OSError as exc:
                got = f"error: {exc}"
            time.sleep(0.3)
            latencies = probe.finish()[warm:]
            stop.set()
            sampler.join()
        latencies.sort()
        results.append(
            Fairness(
                scenario,
                code,
                latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else float("nan"),
                latencies[-1] * 1e3 if latencies else float("nan"),
                len(latencies),
                (peak[0] - base) / 1024,
                got,
            )
        )
    return results


def _sample_rss(pid: int, peak: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kib(pid))
        time.sleep(0.02)


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def baseline_tree(ref: str, workdir: Path) -> Path:
    """The ``src`` directory of git ref ``ref``, exported to ``workdir``."""
    target = workdir / f"baseline-{ref}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "src"


@dataclass
class BeforeAfter:
    """``-c 50 -P 16`` on this tree and the baseline: medians, and the median of the ratios
    of the two runs of each round (back to back, so both saw about the same load)."""

    after_rps: float
    before_rps: float
    redis_rps: float
    paired_ratio: float
    after_cpu_us: float
    before_cpu_us: float


def bench_before_after(
    s: dict[str, Server], workdir: Path, src: Path, n: int, rounds: int
) -> BeforeAfter:
    """Requests/s and CPU per request at -c 50 -P 16: this tree, baseline and Redis, each
    once per round in rotating order."""
    with chronoid_server(workdir, "before", src, "--max-connections", "10000") as before:
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        peer: list[tuple[float, float]] = []
        order = [(ours, s["chronoid"], ["GETSEQ"]), (theirs, before, ["GETSEQ"]),
                 (peer, s["redis"], ["INCR", "k"])]  # fmt: skip
        for i in range(rounds):
            for k in range(len(order)):
                out, server, command = order[(i + k) % len(order)]
                out.append(redis_benchmark(server, n, 50, 16, command))
    return BeforeAfter(
        statistics.median(r for r, _ in ours),
        statistics.median(r for r, _ in theirs),
        statistics.median(r for r, _ in peer),
        statistics.median(a / b for (a, _), (b, _) in zip(ours, theirs, strict=True)),
        statistics.median(c for _, c in ours),
        statistics.median(c for _, c in theirs),
    )


@dataclass
class Row:
    setting: str
    chronoid_rps: float
    chronoid_cpu_us: float
    peer: str
    peer_rps: float
    peer_cpu_us: float

    @property
    def ratio(self) -> float:
        return self.chronoid_rps / self.peer_rps


def bench_redis_benchmark(s: dict[str, Server], n: int, rounds: int) -> list[Row]:
    settings = [
        ("-c 50 -P 1", 50, 1, "redis"),
        ("-c 50 -P 16", 50, 16, "redis"),
        ("-c 1 -P 1", 1, 1, "redis"),
        ("-c 1 -P 1", 1, 1, "redis-always"),
        ("-c 50 -P 1", 50, 1, "redis-always"),
    ]
    rows = []
    for label, clients, pipeline, peer in settings:
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for i in range(rounds):
            pair = [
                (ours, s["chronoid"], ["GETSEQ"]),
                (theirs, s[peer], ["INCR", "k"]),
            ]
            for out, server, command in pair if i % 2 == 0 else reversed(pair):
                out.append(redis_benchmark(server, n, clients, pipeline, command))
        rows.append(
            Row(
                label,
                statistics.median(r for r, _ in ours),
                statistics.median(c for _, c in ours),
                peer,
                statistics.median(r for r, _ in theirs),
                statistics.median(c for _, c in theirs),
            )
        )
    return rows


def bench_redis_py(s: dict[str, Server], requests: int) -> tuple[float, float]:
    """values/s of GETSEQ 1000 and INCRBY k 1000 through redis-py (one connection each)."""
    ours = redis.Redis(port=s["chronoid"].port)
    theirs = redis.Redis(port=s["redis"].port)
    results = []
    for client, command in ((ours, ("GETSEQ", 1000)), (theirs, ("INCRBY", "k", 1000))):
        client.execute_command(*command)
        start = time.perf_counter()
        for _ in range(requests):
            client.execute_command(*command)
        results.append(requests * 1000 / (time.perf_counter() - start))
        client.close()
    return results[0], results[1]


def bench_range_cache(s: dict[str, Server], values: int) -> float:
    cache = RangeCache(SequencerClient(port=s["chronoid"].port), block=100_000)
    take = cache.next
    take()
    start = time.perf_counter()
    for _ in range(values):
        take()
    elapsed = time.perf_counter() - start
    cache.close()
    return values / elapsed


def bench_restart(workdir: Path, times: int) -> list[float]:
    port = free_port()
    data = workdir / "restart"
    cmd = [sys.executable, "-m", "chronoid", "serve", "--port", str(port), "--data-dir",
           str(data), "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    wait_port(port, process)
    durations = []
    for _ in range(times):
        with SequencerClient(port=port) as client:
            for _ in range(1000):
                client.getseq()
        process.send_signal(signal.SIGKILL)
        start = time.perf_counter()
        process.wait()
        process = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        while True:
            try:
                with SequencerClient(port=port, timeout=1.0) as client:
                    client.getseq()
                break
            except OSError:
                time.sleep(0.002)
        durations.append(time.perf_counter() - start)
    process.terminate()
    process.wait(timeout=10)
    return durations


# -- instructions per request ---------------------------------------------------------------


def redis_command(port: int, data: Path, *extra: str) -> list[str]:
    """``redis-server`` on ``port`` with its defaults but no RDB snapshots, its files in
    ``data`` (made here), plus ``extra`` options: every Redis these benchmarks run."""
    data.mkdir()
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(data), "--daemonize", "no", *extra]  # fmt: skip


def callgrind_per_request(
    cmd: list[str], port: int, command: list[str], n: int, clients: int, workdir: Path,
    env: dict[str, str] | None = None, pipeline: int = 1,
) -> float:  # fmt: skip
    """User-space instructions per request of the server ``cmd`` (listening on ``port``)
    under callgrind: counters zeroed after 2,000 warm-up requests, dumped after ``n``."""
    out = workdir / f"callgrind.{port}"
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        wait_port(port, process, limit_s=300)
        bench = ["redis-benchmark", "-p", str(port), "-c", str(clients), "-P", str(pipeline),
                 "-q"]  # fmt: skip
        for step in (
            [*bench, "-n", "2000", *command],
            ["callgrind_control", "-z", str(process.pid)],
            [*bench, "-n", str(n), *command],
            ["callgrind_control", "-d", str(process.pid)],
        ):
            subprocess.run(step, capture_output=True, check=True, timeout=600)
    finally:
        stop(process, 120)  # callgrind writes its last file on the way out
    dump = Path(f"{out}.1")  # the dump asked for; the file without suffix is the exit's
    summary = re.search(r"^summary: (\d+)", dump.read_text(), re.M)
    if summary is None:
        raise RuntimeError(f"no summary line in {dump}")
    return int(summary.group(1)) / n


def bench_instructions(workdir: Path, src: Path | None, n: int) -> list[tuple[str, str, float]]:
    """(setting, server, instructions per request)."""
    rows = []
    for label, clients in (("-c 50 -P 1", 50), ("-c 1 -P 1", 1)):
        count = n if clients > 1 else n // 2  # one connection is slower under callgrind
        trees: list[tuple[str, Path | None]] = [("this tree", None)]
        if src is not None:
            trees.append((src.parent.name.removeprefix("baseline-"), src))
        for tree, path in trees:
            env = dict(os.environ)
            if path is not None:
                env["PYTHONPATH"] = str(path)
            for loop in ("uvloop", "asyncio"):
                port = free_port()
                cmd = [sys.executable, "-m", "chronoid", "serve", "--port", str(port),
                       "--data-dir", str(workdir / f"cg-{port}"), "--log-level", "WARNING",
                       "--event-loop", loop]  # fmt: skip
                per = callgrind_per_request(cmd, port, ["GETSEQ"], count, clients, workdir, env)
                rows.append((label, f"chronoid GETSEQ, {loop}, {tree}", per))
        port = free_port()
        cmd = [sys.executable, str(FLOOR_SERVER), str(port)]
        rows.append((label, "floor: empty uvloop server, fixed `:1`", callgrind_per_request(
            cmd, port, ["GETSEQ"], count, clients, workdir)))  # fmt: skip
        port = free_port()
        cmd = redis_command(port, workdir / f"cg-redis-{port}", "--appendonly", "no")
        rows.append((label, "Redis INCR", callgrind_per_request(
            cmd, port, ["INCR", "k"], count, clients, workdir)))  # fmt: skip
    return rows


def bench_instructions_pipelined(
    workdir: Path, src: Path | None, ref: str, n: int
) -> list[tuple[str, str, float]]:
    """(setting, server, instructions per request) at ``-c 50 -P 16``: this tree and the
    tree ``src`` (git ref ``ref``), uvloop, and Redis."""
    label = "-c 50 -P 16"
    rows = []
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if src is not None:
        trees.append((ref, src))
    for tree, path in trees:
        env = dict(os.environ)
        if path is not None:
            env["PYTHONPATH"] = str(path)
        port = free_port()
        cmd = [sys.executable, "-m", "chronoid", "serve", "--port", str(port),
               "--data-dir", str(workdir / f"cg-{port}"), "--log-level", "WARNING",
               "--event-loop", "uvloop"]  # fmt: skip
        per = callgrind_per_request(cmd, port, ["GETSEQ"], n, 50, workdir, env, pipeline=16)
        rows.append((label, f"chronoid GETSEQ, uvloop, {tree}", per))
    port = free_port()
    cmd = redis_command(port, workdir / f"cg-redis-{port}", "--appendonly", "no")
    rows.append((label, "Redis INCR", callgrind_per_request(
        cmd, port, ["INCR", "k"], n, 50, workdir, pipeline=16)))  # fmt: skip
    return rows


def instructions_main(args: argparse.Namespace) -> int:
    for tool in ("valgrind", "callgrind_control", "redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"bench_sequencer: {tool} is not installed", file=sys.stderr)
            return 1
    n = 5_000 if args.quick else 20_000
    workdir = Path(tempfile.mkdtemp(prefix="chronoid-bench-cg-"))
    try:
        ref = args.instructions_baseline
        src = baseline_tree(ref, workdir) if ref else None
        rows = bench_instructions(workdir, src, n)
        before = baseline_tree(args.baseline, workdir) if args.baseline != ref else src
        rows += bench_instructions_pipelined(workdir, before, args.baseline, n * 8)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flags = ["--instructions", *(["--quick"] if args.quick else [])]
    details = (
        f"user-space instructions per request under callgrind (`redis-benchmark -n {n}` at "
        f"`-c 50 -P 1`, {n // 2} at `-c 1`, {n * 8} at `-P 16`; kernel time not included), "
        "which the machine's noise does not move."
    )
    out = [
        measured_line("bench_sequencer.py", flags, details),
        "",
        "| setting | server | instructions per request | × Redis |",
        "|---|---|---:|---:|",
    ]
    redis_per = {label: per for label, server, per in rows if server == "Redis INCR"}
    for label, server, per in rows:
        out.append(f"| `{label}` | {server} | {per:,.0f} | {per / redis_per[label]:.2f}× |")
    text = "\n".join(out) + "\n"
    print(text)
    INSTRUCTIONS.write_text(text)
    return 0


def latency_table(
    latency: list[tuple[str, list[Latency]]], n: int, rounds: int
) -> tuple[list[str], list[str]]:
    """The latency table's lines and its goals (p99 ≤ 1.2× and max ≤ 2× Redis's)."""
    out = [
        f"Latency (ms; redis-benchmark `-n {n}`, median of {rounds} round(s); the floor is "
        "what a Python server with uvloop reaches here at best):",
        "",
        "| setting | server | req/s | p50 | p99 | p99.9 | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    goals = []
    for label, figures in latency:
        for (_, name, _), lat in zip(LATENCY_SERVERS, figures, strict=True):
            out.append(
                f"| `{label}` | {name} | {lat.rps:,.0f} | {lat.p50_ms:.3f} | {lat.p99_ms:.3f} | "
                f"{lat.p999_ms:.3f} | {lat.max_ms:.3f} |"
            )
        ours, theirs, floor = figures
        p99_ratio = ours.p99_ms / theirs.p99_ms
        max_ratio = ours.max_ms / theirs.max_ms
        goals.append(
            f"`{label}` p99 ≤ 1.2× Redis: {'met' if p99_ratio <= 1.2 else 'not met'} "
            f"({p99_ratio:.2f}×; the floor {floor.p99_ms / theirs.p99_ms:.2f}×), max ≤ 2× "
            f"Redis: {'met' if max_ratio <= 2 else 'not met'} ({max_ratio:.2f}×; the floor "
            f"{floor.max_ms / theirs.max_ms:.2f}×)"
        )
    return out, goals


def latency_main(args: argparse.Namespace) -> int:
    """``--only latency``: the latency table alone, printed (no results file written)."""
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"bench_sequencer: {tool} is not installed", file=sys.stderr)
            return 1
    n = 25_000 if args.quick else 100_000
    rounds = 1 if args.quick else 5
    workdir = Path(tempfile.mkdtemp(prefix="chronoid-bench-seq-"))
    try:
        with servers(workdir) as s:
            latency = bench_latency(s, n, rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flags = ["--only", "latency", *(["--quick"] if args.quick else [])]
    lines, goals = latency_table(latency, n, rounds)
    out = [measured_line("bench_sequencer.py", flags, ""), "", *lines, ""]
    out.append("Goals: " + "; ".join(goals) + ".")
    print("\n".join(out))
    return 0


def deep_main(args: argparse.Namespace) -> int:
    """``--only deep``: scenario (e) against Redis ``INCR`` side by side (printed only): how
    long 200 connections pipelining 15,000 commands each take, and a polite client's latency
    meanwhile, rounds interleaved."""
    rounds = 1 if args.quick else 3
    workdir = Path(tempfile.mkdtemp(prefix="chronoid-bench-seq-"))
    runs: dict[str, list[tuple[float, float, float, float]]] = {"chronoid": [], "redis": []}
    try:
        with servers(workdir) as s:
            for _ in range(rounds):
                for name, command, probe_command in (
                    ("chronoid", RESP_GETSEQ, b"GETSEQ\r\n"),
                    ("redis", RESP_INCR, b"INCR k\r\n"),
                ):
                    probe = _Probe(s[name].port, None, probe_command)
                    time.sleep(0.3)
                    warm = len(probe.latencies)
                    started = time.monotonic()
                    got = deep_pipelines(s[name].port, command)
                    took = time.monotonic() - started
                    latencies = sorted(probe.finish()[warm:])
                    if not got.startswith("3,000,000 values, 0 errors"):
                        print(f"bench_sequencer: {name}: {got}", file=sys.stderr)
                        return 1
                    runs[name].append(
                        (
                            took,
                            latencies[len(latencies) // 2] * 1e3,
                            latencies[int(len(latencies) * 0.99)] * 1e3,
                            latencies[-1] * 1e3,
                        )
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flags = ["--only", "deep", *(["--quick"] if args.quick else [])]
    out = [
        measured_line("bench_sequencer.py", flags, f"median of {rounds} interleaved round(s)"),
        "",
        "200 connections each pipeline 15,000 commands at once; a polite client sends one at a "
        "time meanwhile:",
        "",
        "| server | all answered in s | commands/s | polite p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("chronoid", "chronoid GETSEQ"), ("redis", "Redis INCR")):
        columns = zip(*runs[name], strict=True)
        took, p50, p99, top = (statistics.median(column) for column in columns)
        out.append(
            f"| {label} | {took:.2f} | {3_000_000 / took:,.0f} | {p50:.2f} | {p99:.2f} | "
            f"{top:.2f} |"
        )
    print("\n".join(out))
    return 0


def filesystem(path: Path) -> str:
    done = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=False)
    lines = done.stdout.splitlines()
    return lines[-1].split()[1] if len(lines) > 1 else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    parser.add_argument(
        "--baseline", default="a95c2b7", help="git ref to compare with (default a95c2b7)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the before/after comparison"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="measure user-space instructions per request under callgrind instead",
    )
    parser.add_argument(
        "--instructions-baseline",
        default="50d7bf4",
        help="git ref to compare with in --instructions (default 50d7bf4; '' for none)",
    )
    parser.add_argument(
        "--only",
        choices=["latency", "deep"],
        help="run one part only, printed (not written to a file): 'latency' the latency "
        "table, 'deep' deep pipelines against Redis",
    )
    args = parser.parse_args(argv)
    if args.instructions:
        return instructions_main(args)
    if args.only == "latency":
        return latency_main(args)
    if args.only == "deep":
        return deep_main(args)
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in ("redis-server", "redis-benchmark", "openssl"):
        if shutil.which(tool) is None:
            print(f"bench_sequencer: {tool} is not installed", file=sys.stderr)
            return 1
    n = 50_000 if args.quick else 200_000
    rounds = 1 if args.quick else 3
    workdir = Path(tempfile.mkdtemp(prefix="chronoid-bench-seq-"))
    before_after: BeforeAfter | None = None
    fairness: list[Fairness] = []
    try:
        src = None if args.no_baseline else baseline_tree(args.baseline, workdir)
        cert, key = make_certificate(workdir)
        with servers(workdir) as s:
            rows = bench_redis_benchmark(s, n, rounds)
            latency = bench_latency(s, n // 2, 1 if args.quick else 5)
            if src is not None:
                before_after = bench_before_after(s, workdir, src, n, 3 if args.quick else 9)
            ours_py, theirs_py = bench_redis_py(s, 2_000 if args.quick else 10_000)
            cache = bench_range_cache(s, 1_000_000 if args.quick else 5_000_000)
        fairness = bench_fairness(workdir, "this tree", None, cert, key)
        if src is not None:
            fairness += bench_fairness(workdir, args.baseline, src, cert, key)
        restarts = bench_restart(workdir, 3 if args.quick else 10)
        fs = filesystem(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    out = [
        measured_line(
            "bench_sequencer.py",
            ["--quick"] if args.quick else [],
            f"state on {fs}; redis-benchmark `-n {n}`, median of {rounds} interleaved round(s).",
        ),
        "",
        "| redis-benchmark | chronoid GETSEQ req/s | peer | peer req/s | req/s ratio | "
        "server CPU µs/req chronoid | peer | CPU ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    peer_names = {"redis": "Redis INCR", "redis-always": "Redis INCR, appendfsync always"}
    for row in rows:
        out.append(
            f"| `{row.setting}` | {row.chronoid_rps:,.0f} | {peer_names[row.peer]} | "
            f"{row.peer_rps:,.0f} | {row.ratio:.2f}× | {row.chronoid_cpu_us:.1f} | "
            f"{row.peer_cpu_us:.1f} | {row.chronoid_cpu_us / row.peer_cpu_us:.2f}× |"
        )
    latency_lines, latency_goals = latency_table(latency, n // 2, 1 if args.quick else 5)
    out += ["", *latency_lines]
    out += [
        "",
        "Fairness: a well-behaved client's latency (one `GETSEQ` at a time) while an abuser "
        "works on other connections; server RSS growth (peak minus start):",
        "",
        "| scenario | code | well-behaved p99 ms | max ms | its requests | RSS growth MiB | "
        "the abuser got |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    fair_goals = []
    for f in fairness:
        out.append(
            f"| {f.scenario} | {f.code} | {f.p99_ms:.2f} | {f.max_ms:.2f} | {f.requests} | "
            f"{f.rss_growth_mib:.1f} | {f.abuser_got} |"
        )
        if f.code == "this tree" and not f.scenario.startswith("(e)"):  # (e): no goal set
            ok = f.p99_ms <= 10 and f.max_ms <= 50 and f.rss_growth_mib <= 64
            fair_goals.append(f"{f.scenario[:3]} {'met' if ok else 'not met'}")
    out += [
        "",
        "| other | chronoid | peer | ratio |",
        "|---|---:|---:|---:|",
        f"| redis-py `GETSEQ 1000` vs `INCRBY k 1000`, values/s | {ours_py:,.0f} | "
        f"{theirs_py:,.0f} | {ours_py / theirs_py:.2f}× |",
        f"| Python `RangeCache.next()` (block 100,000), values/s, one thread | {cache:,.0f} | | |",
        f"| restart after kill -9 to first reply, ms (median / max of {len(restarts)}) | "
        f"{statistics.median(restarts) * 1e3:.0f} / {max(restarts) * 1e3:.0f} | | |",
    ]
    if before_after is not None:
        ba = before_after
        out += [
            f"| `-c 50 -P 16` req/s, this tree vs {args.baseline}, medians (Redis INCR in the "
            f"same rounds: {ba.redis_rps:,.0f}) | {ba.after_rps:,.0f} | {ba.before_rps:,.0f} | "
            f"{ba.after_rps / ba.before_rps:.2f}× |",
            f"| the same, median of the per-round ratios (both runs of a round back to back) "
            f"| | | {ba.paired_ratio:.2f}× |",
            f"| the same, server CPU µs/req | {ba.after_cpu_us:.2f} | {ba.before_cpu_us:.2f} | "
            f"{ba.after_cpu_us / ba.before_cpu_us:.2f}× |",
        ]
    out.append("")
    goal = {
        ("-c 50 -P 1", "redis"): 0.9,
        ("-c 1 -P 1", "redis"): 1.0,
    }
    goals = [
        f"`{row.setting}` vs {peer_names[row.peer]} ≥ {goal[(row.setting, row.peer)]:g}×: "
        f"{'met' if row.ratio >= goal[(row.setting, row.peer)] else 'not met'} "
        f"({row.ratio:.2f}×)"
        for row in rows
        if (row.setting, row.peer) in goal
    ]
    goals += latency_goals
    goals.append("fairness (p99 ≤ 10 ms, max ≤ 50 ms, RSS ≤ +64 MiB): " + ", ".join(fair_goals))
    if before_after is not None:
        ratio = before_after.paired_ratio
        goals.append(
            f"hardening costs ≤ 5 % at `-c 50 -P 16`: {'met' if ratio >= 0.95 else 'not met'} "
            f"({ratio:.2f}×)"
        )
    goals.append(f"range cache ≥ 1 M values/s: {'met' if cache >= 1e6 else 'not met'}")
    goals.append(f"restart ≤ 1 s: {'met' if max(restarts) <= 1.0 else 'not met'}")
    out.append("Goals: " + "; ".join(goals) + ".")
    text = "\n".join(out) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
