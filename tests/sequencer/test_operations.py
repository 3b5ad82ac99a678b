"""Running the sequencer as a service: health endpoints, log formats, metrics, systemd
readiness, the unit file, HELLO/INFO, the probe command. Real ``chronoid serve`` processes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronoid.sequencer.logs import (
    JsonFormatter,
    LogContext,
    LogfmtFormatter,
    TextFormatter,
    event,
    logfmt_value,
)
from chronoid.sequencer.metrics import METRIC_NAMES, LatencyHistogram
from chronoid.version import package_version
from tests.sequencer import logfmt_strict
from tests.sequencer.conftest import ServerProcess, StartServer, exchange, wait_for_port
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
HA_ONLY = {
    "chronoid_sequencer_leader",
    "chronoid_sequencer_term",
    "chronoid_sequencer_step_downs_total",
    "chronoid_sequencer_store_data_lost",
}


def http(port: int, path: str, method: str = "GET") -> tuple[int, bytes, str]:
    """(status, body, content type) of one request to the metrics port."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers["Content-Type"]


def sample_names(text: str) -> set[str]:
    """Every sample name in a Prometheus text exposition."""
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def parse_lines(text: str, log_format: str) -> list[dict[str, str]]:
    """Every stderr line parsed with a real parser (json) or the strict logfmt one."""
    lines = [line for line in text.split("\n") if line]
    assert lines, "no log lines"
    if log_format == "json":
        return [json.loads(line) for line in lines]
    return [logfmt_strict.parse(line) for line in lines]


# -- health and readiness --------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "logfmt"])
def test_health_readiness_and_logs_of_a_failing_store(
    start_server: StartServer, tmp_path: Path, log_format: str
) -> None:
    metrics_port = free_port()
    srv = start_server(
        "--metrics-port",
        str(metrics_port),
        "--log-format",
        log_format,
        "--log-level",
        "INFO",
    )
    wait_for_port(metrics_port, srv.child)
    status, body, kind = http(metrics_port, "/healthz")
    assert (status, kind) == (200, "application/json")
    assert json.loads(body) == {"status": "alive", "version": package_version()}
    status, body, _ = http(metrics_port, "/readyz")
    assert status == 200 and json.loads(body)["role"] == "standalone"
    assert http(metrics_port, "/readyz", "HEAD")[:2] == (200, b"")
    assert http(metrics_port, "/")[0] == 404
    assert http(metrics_port, "/healthz/extra")[0] == 404
    assert http(metrics_port, "/readyz", "POST")[0] == 405
    assert exchange(srv.port, b"GETSEQ\r\nQUIT\r\n") == b":1\r\n+OK\r\n"

    # The data directory disappears under the server; a file takes its place.
    srv.data_dir.rename(tmp_path / "moved")
    srv.data_dir.write_text("not a directory")
    reply = exchange(srv.port, b"GETSEQ 1000000\r\nQUIT\r\n")
    assert reply.startswith(b"-ERR reservation failed"), reply
    status, body, _ = http(metrics_port, "/readyz")
    facts = json.loads(body)
    assert status == 503 and facts["ready"] is False
    assert "store failing" in facts["reason"] and "'default'" in facts["reason"]
    assert http(metrics_port, "/healthz")[0] == 200  # alive, just not ready
    _, metrics, _ = http(metrics_port, "/metrics")
    assert b"chronoid_sequencer_ready 0.0" in metrics
    assert b"chronoid_sequencer_reservation_errors_total 1.0" in metrics

    assert srv.stop() == 0
    records = parse_lines(srv.log(), log_format)
    for record in records:
        assert {"ts", "level", "logger", "event", "msg"} <= set(record), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    events = [record["event"] for record in records]
    assert events[0] == "listening" and "shutting_down" in events
    failed = next(r for r in records if r["event"] == "reservation_failed")
    assert failed["sequence"] == "default" and failed["level"] == "error"
    assert "member" not in failed and "term" not in failed  # standalone: no such thing


def test_metrics_of_a_standalone_server(start_server: StartServer) -> None:
    metrics_port = free_port()
    srv = start_server("--metrics-port", str(metrics_port))
    wait_for_port(metrics_port, srv.child)
    exchange(srv.port, b"GETSEQ 5\r\nGETSEQ 1 orders\r\nQUIT\r\n")
    status, body, kind = http(metrics_port, "/metrics")
    assert status == 200 and kind.startswith("text/plain")
    text = body.decode()
    assert sample_names(text) == METRIC_NAMES - HA_ONLY
    python = sys.version.split()[0]
    assert f'chronoid_build_info{{python="{python}",version="{package_version()}"}} 1.0' in text
    assert 'chronoid_sequencer_sequence_next{sequence="default"} 6.0' in text
    assert 'chronoid_sequencer_sequence_next{sequence="orders"} 2.0' in text
    assert 'chronoid_sequencer_sequence_block{sequence="orders"}' in text
    assert 'chronoid_connections_refused_total{reason="max_connections"} 0.0' in text
    # Two reservations (default at start, orders on first use) fell into the histogram.
    assert "chronoid_sequencer_watermark_write_seconds_count 2.0" in text
    assert 'chronoid_sequencer_watermark_write_seconds_bucket{le="+Inf"} 2.0' in text
    assert "chronoid_sequencer_ready 1.0" in text


def test_refusals_by_reason_reach_the_metrics(start_server: StartServer) -> None:
    metrics_port = free_port()
    srv = start_server("--metrics-port", str(metrics_port), "--max-connections", "1")
    wait_for_port(metrics_port, srv.child)
    # The readiness probe's connection may not be closed on the server's side yet: retry.
    for _ in range(100):
        held = socket.create_connection(("127.0.0.1", srv.port))
        held.sendall(b"PING\r\n")
        if held.recv(100) == b"+PONG\r\n":
            break
        held.close()
        time.sleep(0.02)
    with held:
        assert exchange(srv.port, b"PING\r\n") == b"-ERR max number of clients reached\r\n"
    # A protocol error closes that connection (once the held one is gone and a slot is free).
    for _ in range(100):
        if exchange(srv.port, b"*x\r\n").startswith(b"-ERR Protocol"):
            break
        time.sleep(0.02)
    text = http(metrics_port, "/metrics")[1].decode()
    limit = re.search(r'connections_refused_total\{reason="max_connections"\} (\d+)', text)
    assert limit is not None and int(limit.group(1)) >= 1
    assert 'chronoid_connections_refused_total{reason="protocol_error"} 1.0' in text
    assert 'chronoid_connections_refused_total{reason="idle_timeout"} 0.0' in text


def test_latency_histogram_is_cumulative() -> None:
    histogram = LatencyHistogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 5.0):
        histogram.observe(seconds)
    buckets, total = histogram.cumulative()
    assert buckets == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert total == pytest.approx(5.0035)


def test_probe_command(start_server: StartServer) -> None:
    metrics_port = free_port()
    srv = start_server("--metrics-port", str(metrics_port))
    wait_for_port(metrics_port, srv.child)
    base = [sys.executable, "-m", "chronoid", "probe"]
    ok = subprocess.run(
        [*base, f"http://127.0.0.1:{metrics_port}/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("200 ready=True role=standalone")
    missing = subprocess.run(
        [*base, f"http://127.0.0.1:{metrics_port}/nope"], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 1 and missing.stderr.startswith("404 ")
    down = subprocess.run(
        [*base, f"http://127.0.0.1:{free_port()}/healthz", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1 and down.stderr.count("\n") == 1
    assert "Connection refused" in down.stderr


# -- systemd ---------------------------------------------------------------------------------


def _recv(sock: socket.socket) -> dict[str, str]:
    message = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in message.split("\n") if line)


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_notification_arrives_when_the_server_can_issue(
    start_server: StartServer, abstract: bool
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"@chronoid-test-{uuid.uuid4().hex}"
            sock.bind("\0" + name[1:])
        else:
            directory = tempfile.mkdtemp(prefix="chronoid-notify-")  # short: sun_path is 108 B
            name = f"{directory}/notify"
            sock.bind(name)
        sock.settimeout(15)
        srv = start_server(env={"NOTIFY_SOCKET": name}, wait=False)
        ready = _recv(sock)
        # READY=1 means listening with the first block reserved: a value comes at once.
        assert ready["READY"] == "1"
        assert f":{srv.port}" in ready["STATUS"]
        assert exchange(srv.port, b"GETSEQ\r\nQUIT\r\n") == b":1\r\n+OK\r\n"
        srv.process.send_signal(signal.SIGTERM)
        assert _recv(sock)["STOPPING"] == "1"
        assert srv.process.wait(timeout=10) == 0
        if not abstract:
            shutil.rmtree(directory)


def test_state_directory_is_the_default_data_dir(start_server: StartServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    srv = ServerProcess.start(
        ["--port", str(port)],
        port=port,
        data_dir=state,
        log_path=tmp_path / "serve.log",
        env={"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": f"{state}:{tmp_path / 'second'}"},
    )
    try:
        assert exchange(port, b"GETSEQ\r\nQUIT\r\n") == b":1\r\n+OK\r\n"
        assert (state / "sequencer.json").exists()
        assert not (tmp_path / "second").exists()
    finally:
        srv.stop()


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian package 'systemd')")
    unit = (ROOT / "docs" / "systemd" / "chronoid.service").read_text()
    assert "Type=notify" in unit and "StateDirectory=chronoid" in unit
    # verify checks that ExecStart's program exists: point it at this environment's chronoid.
    chronoid = Path(sys.executable).with_name("chronoid")
    assert chronoid.exists(), chronoid
    path = tmp_path / "chronoid.service"
    path.write_text(unit.replace("/usr/local/bin/chronoid", str(chronoid)))
    done = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    # Unknown or misspelt keys are only warnings (exit 0): any output is a failure too.
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr
    # The settings file in docs/ is one `chronoid serve --config` accepts.
    printed = subprocess.run(
        [sys.executable, "-m", "chronoid", "serve", "--print-config", "--config",
         str(ROOT / "docs" / "systemd" / "serve.toml")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr


# -- Redis-shaped answers --------------------------------------------------------------------


def test_hello_reports_the_package_version(server: ServerProcess) -> None:
    reply = exchange(server.port, b"HELLO 3\r\nQUIT\r\n")
    version = package_version().encode()
    assert b"$7\r\nversion\r\n$%d\r\n%s\r\n" % (len(version), version) in reply
    assert version != b"1.0.0"


def test_info_honours_its_sections(server: ServerProcess) -> None:
    def info(*sections: str) -> bytes:
        command = b"INFO" + b"".join(b" " + s.encode() for s in sections)
        return exchange(server.port, command + b"\r\nQUIT\r\n")

    everything = info()
    headers = re.findall(rb"# (\w+)", everything)
    assert headers == [b"Server", b"Clients", b"Stats", b"Sequences"]  # no failover: no Replication
    for word in ("all", "everything", "default"):
        assert re.findall(rb"# (\w+)", info(word)) == headers
    clients = info("clients")
    assert b"# Clients" in clients and b"connected_clients:1" in clients
    assert b"# Server" not in clients and b"values_issued" not in clients
    both = info("STATS", "server")
    assert re.findall(rb"# (\w+)", both) == [b"Server", b"Stats"]  # Redis's order, not the ask's
    assert b"chronoid_version:" + package_version().encode() in both
    assert info("keyspace-nonsense") == b"$0\r\n\r\n+OK\r\n"
    assert b"seq_default:next=1," in info("sequences")


# -- the formatters themselves ---------------------------------------------------------------


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "chronoid.sequencer", logging.WARNING, "x.py", 1, message, args, None
    )
    record.__dict__.update(extra)
    return record


@given(st.text())
def test_logfmt_values_round_trip_through_a_strict_parser(value: str) -> None:
    line = f"k={logfmt_value(value)} after=1"
    assert logfmt_strict.parse(line) == {"k": value, "after": "1"}


def test_formatters_carry_event_sequence_member_and_term() -> None:
    context = LogContext(member="m1", term=lambda: 7)
    record = _record(
        "reservation of %r failed: %s",
        "a b",
        'disk "full"\nsecond line',
        **event("x_failed", sequence="a b"),
    )
    context.filter(record)
    parsed = logfmt_strict.parse(LogfmtFormatter().format(record))
    assert parsed["event"] == "x_failed" and parsed["sequence"] == "a b"
    assert (parsed["member"], parsed["term"]) == ("m1", "7")
    assert parsed["msg"] == "reservation of 'a b' failed: disk \"full\"\nsecond line"
    document = json.loads(JsonFormatter().format(record))
    assert document["msg"] == parsed["msg"] and document["term"] == 7
    text = TextFormatter().format(record)
    assert "\n" not in text and " x_failed: " in text and "member=m1" in text
    # A line logged without an event (a library's) still gets one.
    plain = _record("connection %s lost: %s", "x", "y")
    assert logfmt_strict.parse(LogfmtFormatter().format(plain))["event"] == "connection_lost"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = _record("oops")
        failed.exc_info = sys.exc_info()
    parsed = logfmt_strict.parse(LogfmtFormatter().format(failed))
    assert "RuntimeError: boom" in parsed["error"]


@pytest.mark.parametrize("log_format", ["json", "logfmt", "text"])
def test_a_fatal_error_is_one_line_in_the_log_format(tmp_path: Path, log_format: str) -> None:
    # The metrics port is taken: the server cannot start as configured.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "chronoid", "serve", "--port", str(free_port()),
             "--data-dir", str(tmp_path / "d"), "--log-format", log_format, "--log-level",
             "ERROR", "--metrics-port", str(taken.getsockname()[1])],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    if log_format == "text":
        assert lines[0].startswith("chronoid: error: cannot listen on 127.0.0.1:")
        return
    (record,) = parse_lines(done.stderr, log_format)
    assert record["event"] == "fatal" and record["level"] == "critical"
    assert "for metrics" in record["msg"] and record["error_type"] == "ServerStartError"


def test_health_answers_while_the_server_is_starting() -> None:
    from chronoid.sequencer.health import HealthServer

    health = HealthServer(0)
    health.start()
    try:
        assert http(health.port, "/healthz")[0] == 200
        status, body, _ = http(health.port, "/readyz")
        assert status == 503 and json.loads(body)["role"] == "starting"
        assert http(health.port, "/metrics")[0] == 503
        # Garbage on the port does not stop it.
        with socket.create_connection(("127.0.0.1", health.port)) as sock:
            sock.sendall(b"\x00\xff NOT HTTP\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert b"400" in answer  # Bad request (a bare HTTP/0.9-style page), then closed
        assert http(health.port, "/healthz")[0] == 200
    finally:
        health.close()


@pytest.mark.parametrize("address", ["/nonexistent/notify", "relative/notify", "@"])
def test_a_broken_notify_socket_never_stops_the_server(
    start_server: StartServer, address: str
) -> None:
    srv = start_server(
        "--log-format", "json", "--log-level", "WARNING", env={"NOTIFY_SOCKET": address}
    )
    assert exchange(srv.port, b"GETSEQ\r\nQUIT\r\n") == b":1\r\n+OK\r\n"
    assert srv.stop() == 0
    records = parse_lines(srv.log(), "json")
    assert {r["event"] for r in records} == {"notify_failed"}
