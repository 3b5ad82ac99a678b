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

The machine is shared, so absolute figures wander; read the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from chronoid.sequencer.client import RangeCache, SequencerClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "sequencer.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        for name, extra in (
            ("redis", ["--appendonly", "no"]),
            ("redis-always", ["--appendonly", "yes", "--appendfsync", "always"]),
        ):
            port = free_port()
            data = workdir / name
            data.mkdir()
            cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--dir", str(data), "--daemonize", "no", *extra]  # fmt: skip
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


def filesystem(path: Path) -> str:
    done = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=False)
    lines = done.stdout.splitlines()
    return lines[-1].split()[1] if len(lines) > 1 else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    args = parser.parse_args(argv)
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            print(f"bench_sequencer: {tool} is not installed", file=sys.stderr)
            return 1
    n = 50_000 if args.quick else 200_000
    rounds = 1 if args.quick else 3
    workdir = Path(tempfile.mkdtemp(prefix="chronoid-bench-seq-"))
    try:
        with servers(workdir) as s:
            rows = bench_redis_benchmark(s, n, rounds)
            ours_py, theirs_py = bench_redis_py(s, 2_000 if args.quick else 10_000)
            cache = bench_range_cache(s, 1_000_000 if args.quick else 5_000_000)
        restarts = bench_restart(workdir, 3 if args.quick else 10)
        fs = filesystem(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    command = "benchmarks/bench_sequencer.py" + (" --quick" if args.quick else "")
    out = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `.venv/bin/python {command}` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"state on {fs}; redis-benchmark `-n {n}`, median of {rounds} interleaved round(s).",
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
    out += [
        "",
        "| other | chronoid | peer | ratio |",
        "|---|---:|---:|---:|",
        f"| redis-py `GETSEQ 1000` vs `INCRBY k 1000`, values/s | {ours_py:,.0f} | "
        f"{theirs_py:,.0f} | {ours_py / theirs_py:.2f}× |",
        f"| Python `RangeCache.next()` (block 100,000), values/s, one thread | {cache:,.0f} | | |",
        f"| restart after kill -9 to first reply, ms (median / max of {len(restarts)}) | "
        f"{statistics.median(restarts) * 1e3:.0f} / {max(restarts) * 1e3:.0f} | | |",
        "",
    ]
    goal = {
        ("-c 50 -P 1", "redis"): 0.9,
        ("-c 50 -P 16", "redis"): 0.8,
        ("-c 1 -P 1", "redis-always"): 5.0,
    }
    out.append("Goals: " + "; ".join(
        f"`{row.setting}` vs {peer_names[row.peer]} ≥ {goal[(row.setting, row.peer)]:g}×: "
        f"{'met' if row.ratio >= goal[(row.setting, row.peer)] else 'not met'} "
        f"({row.ratio:.2f}×)"
        for row in rows if (row.setting, row.peer) in goal
    ) + f"; range cache ≥ 1 M values/s: {'met' if cache >= 1e6 else 'not met'}; "
        f"restart ≤ 1 s: {'met' if max(restarts) <= 1.0 else 'not met'}.")  # fmt: skip
    text = "\n".join(out) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
