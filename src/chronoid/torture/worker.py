"""The client processes of a torture run: ``python -P worker.py KIND ...``, one per process.

Run by file path, not as ``chronoid.torture.worker``: the ``chronoid`` a worker imports is the
one under test (``PYTHONPATH`` may point at an old checkout that has no torture package), so
this file needs only the standard library, redis-py, and that chronoid's public API. It finds
the history format (:mod:`chronoid.torture.history`, standard library only) beside itself.

Kinds:

``sequencer``  a client of ``chronoid serve`` on ``--host`` (``--ports``: one server, or
               every member of a failover group, following ``-MOVED``), ``--client redis-py``
               (redis-py, its retries off) or ``chronoid`` (chronoid's own
               ``SequencerClient``, failing over as it does): ``--mode single`` (``GETSEQ``),
               ``pipelined`` (8 ``GETSEQ`` per round trip; redis-py only), ``batched``
               (``GETSEQ n``, n of 10, 100, 1000), ``named`` (``GETSEQ 1 tx`` / ``events``;
               with chronoid, ``GETSEQ n tx``, n of 1, 10, 100). ``--tls-ca FILE`` speaks
               TLS (the certificate is checked against the CA, not the host name: the
               clients may dial a relay); the password, if any, comes in
               ``CHRONOID_TORTURE_PASSWORD`` (never on a command line).
``lease``      Mode C: a ``LeaseGenerator`` on a registry (``--registry URL``: Redis, etcd or
               PostgreSQL), called as fast as it gives (a saturating caller sits in the
               generator's wait for the next tick).
``instance``   Mode B: an ``InstanceGenerator`` with a state file, as fast as it gives, on a
               clock ``--clock-offset-ms`` off the system clock (the tool steps it back
               between runs).

Each writes its operations to ``--history`` and stops at ``--stop-file``, after ``--ops``
operations, or on SIGTERM, after finishing the operation it is in.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chronoid.torture.history import HistoryWriter

_stopping = False

PASSWORD_ENV = "CHRONOID_TORTURE_PASSWORD"


def _load_history() -> ModuleType:
    name = "_chronoid_torture_history"
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("history.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_history = _load_history()
now_ns: Callable[[], int] = _history.now_ns


def _on_term(signum: int, frame: Any) -> None:
    global _stopping
    _stopping = True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class Loop:
    """The stop conditions every worker shares, and its history file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.history: HistoryWriter = _history.HistoryWriter(args.history)
        self.stop_file = Path(args.stop_file)
        self.ops_left = args.ops if args.ops > 0 else -1
        self.pace_s = args.pace_ms / 1000
        self.process: str = args.process
        self.key: str = args.key

    def running(self) -> bool:
        """False once a stop was asked for or the operation budget is spent."""
        return not (_stopping or self.ops_left == 0 or self.stop_file.exists())

    def count(self, ops: int = 1) -> None:
        """Spend ``ops`` of the budget, then pause ``--pace-ms``."""
        if self.ops_left > 0:
            self.ops_left = max(0, self.ops_left - ops)
        if self.pace_s:
            time.sleep(self.pace_s)


class Route:
    """Which server a sequencer client talks to: a MOVED reply names the leader, a refused
    or timed-out connection moves on to the next of ``--ports``."""

    def __init__(self, args: argparse.Namespace) -> None:
        import os

        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.ports = [int(p) for p in str(args.ports).split(",") if p]
        self.index = 0
        tls: dict[str, Any] = {}
        if args.tls_ca:
            tls = {"ssl": True, "ssl_ca_certs": args.tls_ca, "ssl_check_hostname": False}
        # No retries inside redis-py: a retried GETSEQ would hide an outcome we must record.
        self.clients = {
            port: redis.Redis(
                host=args.host,
                port=port,
                password=os.environ.get(PASSWORD_ENV) or None,
                socket_timeout=args.timeout_s,
                socket_connect_timeout=args.timeout_s,
                retry=Retry(NoBackoff(), 0),
                protocol=2,
                **tls,
            )
            for port in self.ports
        }

    def client(self) -> Any:
        """The client of the server to ask now."""
        return self.clients[self.ports[self.index]]

    def pipeline(self, commands: list[str]) -> tuple[list[Any], Exception | None]:
        """Send ``commands`` in one write, then read the replies one at a time: the replies
        (an error reply as its exception) and, if the link failed before the last reply,
        that failure (the commands not answered have an unknown outcome)."""
        import redis

        pool = self.client().connection_pool
        connection = pool.get_connection()
        replies: list[Any] = []
        try:
            connection.send_packed_command(connection.pack_commands([(c,) for c in commands]))
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
        except Exception as exc:
            connection.disconnect()
            return replies, exc
        finally:
            pool.release(connection)
        return replies, None

    def failed(self, exc: Exception) -> str:
        """Move on after ``exc`` and classify it: ``fail`` (certainly consumed nothing: a
        refused connection, or a reply such as -ERR, -TRYAGAIN, -MOVED) or ``info``."""
        import redis

        if isinstance(exc, redis.exceptions.MovedError):
            if exc.port in self.clients:
                self.index = self.ports.index(exc.port)
            return "fail"
        if isinstance(exc, redis.ResponseError):
            return "fail"
        self.index = (self.index + 1) % len(self.ports)
        text = str(exc)
        # Only a refused connection (ECONNREFUSED: "Error 111 connecting to ...") is certain;
        # a "111" elsewhere (a port, an address) may be a reply lost after the request.
        if isinstance(exc, redis.ConnectionError) and (
            text.startswith("Error 111 ") or "connection refused" in text.lower()
        ):
            return "fail"
        return "info"


class ChronoidRoute:
    """chronoid's ``SequencerClient`` as a :class:`Route`: it follows ``-MOVED`` and fails
    over through ``--ports`` itself, so a command it gave up on may have been carried out on
    any attempt (``info``), except a reply error from the one server there is (``fail``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import os

        from chronoid.sequencer.client import SequencerClient

        ports = [int(p) for p in str(args.ports).split(",") if p]
        context = None
        if args.tls_ca:
            import ssl

            context = ssl.create_default_context(cafile=args.tls_ca)
            context.check_hostname = False
        self.single = len(ports) == 1
        self._client = SequencerClient(
            args.host,
            ports[0],
            password=os.environ.get(PASSWORD_ENV) or None,
            ssl_context=context,
            timeout=args.timeout_s,
            servers=[f"{args.host}:{port}" for port in ports[1:]],
            failover_timeout=2 * args.timeout_s,
        )

        self.switches = 0
        """Server switches inside the last command: each may follow an attempt whose reply
        was lost after the server had reserved the values (a documented gap)."""

    def client(self) -> Any:
        return self

    def execute_command(self, *command: str) -> int:
        before = self._client.redirects
        try:
            if len(command) == 1:
                return self._client.getseq()
            if len(command) == 2:
                return self._client.getseq(int(command[1]))
            return self._client.getseq(int(command[1]), command[2])
        finally:
            self.switches = self._client.redirects - before

    def failed(self, exc: Exception) -> str:
        from chronoid.errors import SequencerReplyError

        return "fail" if self.single and isinstance(exc, SequencerReplyError) else "info"


def run_sequencer(args: argparse.Namespace) -> None:
    """Clients of ``chronoid serve`` (redis-py or chronoid's own), recording every GETSEQ."""
    loop = Loop(args)
    rng = random.Random(args.seed)
    route: Route | ChronoidRoute = ChronoidRoute(args) if args.client == "chronoid" else Route(args)
    if args.client == "chronoid" and args.mode == "pipelined":
        raise SystemExit("the chronoid client has no pipelined mode")
    while loop.running():
        mode = args.mode
        if mode == "pipelined":
            assert isinstance(route, Route)
            depth = 8
            invoke_ns = now_ns()
            # The replies are read one by one on redis-py's connection, not through
            # Pipeline.execute: that drops the replies it has read when the link fails
            # before the last, and a value received but not recorded could hide a duplicate.
            replies: list[Any] = []
            lost: Exception | None = None
            try:
                replies, lost = route.pipeline(["GETSEQ"] * depth)
            except Exception as exc:
                lost = exc
            done_ns = now_ns()
            failed = lost is not None
            for reply in replies:
                if isinstance(reply, Exception):
                    # An error reply to one command (say -ERR after a full disk) says
                    # nothing of the others, which may have handed values out.
                    failed = True
                    loop.history.op(
                        loop.process,
                        "getseq",
                        "default",
                        invoke_ns,
                        done_ns,
                        route.failed(reply),
                        error=_one_line(reply),
                    )
                else:
                    loop.history.op(
                        loop.process,
                        "getseq",
                        "default",
                        invoke_ns,
                        done_ns,
                        "ok",
                        value=int(reply),
                    )
            if lost is not None:
                status = route.failed(lost)
                for _ in range(depth - len(replies)):
                    loop.history.op(
                        loop.process,
                        "getseq",
                        "default",
                        invoke_ns,
                        done_ns,
                        status,
                        error=_one_line(lost),
                    )
            if failed:
                time.sleep(0.02)
            loop.count(depth)
            continue
        count, name = 1, "default"
        command = ["GETSEQ"]
        if mode == "batched":
            count = rng.choice((10, 100, 1000))
            command = ["GETSEQ", str(count)]
        elif mode == "named":
            name = rng.choice(("tx", "events"))
            # chronoid's client also takes named blocks: getseq(n, name).
            count = rng.choice((1, 10, 100)) if args.client == "chronoid" else 1
            command = ["GETSEQ", str(count), name]
        invoke_ns = now_ns()
        try:
            value = route.client().execute_command(*command)
        except Exception as exc:
            loop.history.op(
                loop.process,
                "getseq",
                name,
                invoke_ns,
                now_ns(),
                route.failed(exc),
                count=count,
                error=_one_line(exc),
            )
            time.sleep(0.02)
        else:
            done_ns = now_ns()
            loop.history.op(
                loop.process,
                "getseq",
                name,
                invoke_ns,
                done_ns,
                "ok",
                value=int(value),
                count=count,
            )
            if isinstance(route, ChronoidRoute) and route.switches:
                # The attempts before the one that answered, each with an unknown outcome.
                loop.history.op(
                    loop.process,
                    "getseq",
                    name,
                    invoke_ns,
                    done_ns,
                    "info",
                    count=count * route.switches,
                    error=f"SequencerClient switched servers {route.switches} time(s) in "
                    "this command: an attempt whose reply was lost may have used values",
                )
        loop.count()


def run_lease(args: argparse.Namespace) -> None:
    """A Mode C generator leasing its node from a registry, called as fast as it gives."""
    from chronoid.errors import ChronoidError
    from chronoid.modes import LeaseGenerator, parse_registry_url

    loop = Loop(args)
    batch_ns = int(args.batch_ms * 1e6)
    generator = None
    while loop.running():
        if generator is None:
            invoke_ns = now_ns()
            try:
                generator = LeaseGenerator(
                    args.layout, parse_registry_url(args.registry), ttl_ms=args.ttl_ms
                )
            except ChronoidError as exc:
                loop.history.op(
                    loop.process,
                    "acquire",
                    loop.key,
                    invoke_ns,
                    now_ns(),
                    "fail",
                    error=_one_line(exc),
                )
                loop.count()
                time.sleep(0.1)
                continue
        ids: list[int] = []
        failure: Exception | None = None
        invoke_ns = now_ns()
        try:
            while len(ids) < args.batch and now_ns() - invoke_ns < batch_ns:
                ids.append(generator.next_id())
        except ChronoidError as exc:
            failure = exc
        finally:
            # Whatever ends the batch (also an exception that is not chronoid's, which then
            # ends the worker), the IDs already handed out are recorded: one left out could
            # hide a duplicate.
            done_ns = now_ns()
            if ids:
                loop.history.op(
                    loop.process, "next_id", loop.key, invoke_ns, done_ns, "ok", ids=ids
                )
        if failure is not None:
            loop.history.op(
                loop.process,
                "next_id",
                loop.key,
                done_ns,
                now_ns(),
                "fail",
                error=_one_line(failure),
            )
            time.sleep(0.05)
        loop.count()
    if generator is not None:
        generator.close()


class OffsetClock:
    """The system clock ``offset_ns`` off: a clock stepped back (or forward) between runs."""

    def __init__(self, offset_ns: int) -> None:
        self.offset_ns = offset_ns

    def now_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def sleep_ns(self, duration_ns: int) -> None:
        if duration_ns > 0:
            time.sleep(duration_ns / 1e9)


def run_instance(args: argparse.Namespace) -> None:
    """A Mode B generator with a state file, called as fast as it gives."""
    from chronoid.errors import ChronoidError
    from chronoid.modes import InstanceGenerator

    loop = Loop(args)
    invoke_ns = now_ns()
    clock = OffsetClock(int(args.clock_offset_ms * 1_000_000))
    try:
        generator = InstanceGenerator(args.layout, state_file=args.state_file, clock=clock)
    except ChronoidError as exc:
        loop.history.op(
            loop.process, "open", loop.key, invoke_ns, now_ns(), "fail", error=_one_line(exc)
        )
        return
    while loop.running():
        invoke_ns = now_ns()
        try:
            ids = generator.next_ids(args.batch)
        except ChronoidError as exc:
            loop.history.op(
                loop.process,
                "next_ids",
                loop.key,
                invoke_ns,
                now_ns(),
                "fail",
                error=_one_line(exc),
            )
            time.sleep(0.05)
        else:
            loop.history.op(loop.process, "next_ids", loop.key, invoke_ns, now_ns(), "ok", ids=ids)
        loop.count()
    generator.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The worker's arguments (the runner builds them; see the module docstring)."""
    parser = argparse.ArgumentParser(prog="chronoid-torture-worker")
    parser.add_argument("kind", choices=("sequencer", "lease", "instance"))
    parser.add_argument("--history", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--process", required=True)
    parser.add_argument("--key", default="default")
    parser.add_argument("--ops", type=int, default=0)
    parser.add_argument("--pace-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ports", default="", help="servers, comma-separated (sequencer)")
    parser.add_argument("--mode", default="single")
    parser.add_argument("--client", choices=("redis-py", "chronoid"), default="redis-py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-ca", default="")
    parser.add_argument("--clock-offset-ms", type=float, default=0.0)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--registry", default="")
    parser.add_argument("--layout", default="chrono64s")
    parser.add_argument("--ttl-ms", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--batch-ms", type=float, default=5.0)
    parser.add_argument("--state-file", default="")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one worker until told to stop."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the tool's to handle
    {"sequencer": run_sequencer, "lease": run_lease, "instance": run_instance}[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
