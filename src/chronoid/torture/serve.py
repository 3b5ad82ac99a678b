"""``chronoid torture serve``: ``chronoid serve`` under clients and a nemesis.

The set-up: one standalone server (the chronoid under test) on a spare port with a scratch
data directory, or with ``ha`` a failover group of ``members`` servers on one store (an etcd
the tool starts itself, or a PostgreSQL or etcd URL it is pointed at, under a cluster name of
its own); ``clients`` redis-py worker processes cycling through the four client kinds (single,
pipelined, batched, named sequences) and following ``-MOVED``; and the nemesis carrying out
the schedule (:mod:`chronoid.torture.nemesis`). Checks: every sequence unique, per-client
increasing, real-time ordered (fetch-and-increment linearizability), and gaps within the
documented two reservation blocks per crash or leader change.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from chronoid.endpoints import parse_etcd_endpoints
from chronoid.errors import InvalidArgument, TortureError
from chronoid.extras import require_extra
from chronoid.redact import redact_dsn
from chronoid.sequencer.client import parse_address
from chronoid.torture.checker import CRASH_FAULTS
from chronoid.torture.history import now_ns
from chronoid.torture.nemesis import (
    ATTACH_FAULTS,
    HA_FAULTS,
    SERVE_FAULTS,
    STORE_FAULTS,
    Step,
    get_scenario,
    random_schedule,
)
from chronoid.torture.network import RelayNetwork, client_network
from chronoid.torture.processes import Child, Owned, free_port, is_root, wait_for_port
from chronoid.torture.relay import CutMode, Relay
from chronoid.torture.run import Run, RunOptions, RunResult, for_a_while, pause
from chronoid.torture.stores import Store, start_store

__all__ = [
    "CLIENT_KINDS",
    "CLIENT_LIBRARIES",
    "GAP_PER_CRASH",
    "Attach",
    "HaSetup",
    "StoreRelays",
    "allowed_faults",
    "client_mix",
    "relayed_url",
    "run_serve",
]

CLIENT_LIBRARIES = ("redis-py", "chronoid")
"""Client libraries of the client processes: redis-py, and chronoid's own SequencerClient."""

CLIENT_KINDS = (
    ("redis-py", "single"),
    ("chronoid", "batched"),
    ("redis-py", "pipelined"),
    ("chronoid", "named"),
    ("redis-py", "batched"),
    ("chronoid", "single"),
    ("redis-py", "named"),
)
"""(library, mode) of the client processes, given out round-robin (so four clients cover
both libraries and every mode but chronoid's single and redis-py's batched and named)."""

PASSWORD_ENV = "CHRONOID_TORTURE_PASSWORD"
"""How the clients get ``--attach``'s password (never on a command line)."""

OWN_HA_STORES = ("etcd", "postgresql")
"""``--ha`` values for which the tool starts the store itself."""

EXTERNAL_HA_SCHEMES = ("etcd://", "postgresql://", "postgres://")

DISK_BYTES = 1024 * 1024
"""Size of the tmpfs holding the data directory when ``disk-full`` is in the schedule."""

GAP_PER_CRASH = 2 * 65_536
"""Values one crash may skip: two reservation blocks of the largest size (docs/sequencer.md)."""

STATE_FILE = "sequencer.json"
"""The standalone server's state file in its data directory."""

_START_TIMEOUT_S = 15.0


class _Server(Owned):
    """One server under test: started, killed and restarted by the nemesis."""

    def __init__(
        self, run: Run, name: str, port: int, args: list[str], host: str = "127.0.0.1"
    ) -> None:
        self.run = run
        self.name = name
        self.port = port
        self.host = host
        self.args = args
        self.child: Child | None = None
        self.starts = 0

    def start(self) -> str | None:
        """Start it and wait until it listens; returns None, or why it did not start."""
        self.starts += 1
        self.child = self.run.supervisor.spawn(
            f"{self.name}.{self.starts}",
            self.run.target.chronoid(
                *("serve", "--host", self.host, "--port", str(self.port)),
                *("--log-level", "WARNING", *self.args),
            ),
            env=self.run.target.env,
        )
        if wait_for_port(self.port, self.child, _START_TIMEOUT_S, self.host):
            return None
        if self.child.alive():
            self.child.kill()
            return f"did not listen within {_START_TIMEOUT_S:g} s: {self.child.log_tail()}"
        return f"exited with status {self.child.process.returncode}: {self.child.log_tail()}"

    def restart(self, deadline_s: float) -> str:
        """Start it again, retrying each second until ``deadline_s`` (time.monotonic())."""
        attempts = 0
        while True:
            attempts += 1
            why = self.start()
            if why is None:
                return "restarted" if attempts == 1 else f"restarted after {attempts} attempts"
            self.run.faults.fault("restart-failed", self.name, now_ns(), None, why)
            if time.monotonic() + 1 >= deadline_s:
                return f"not restarted: {why}"
            time.sleep(1)

    def role(self) -> str:
        """``leader``, ``standby`` or ``down`` (from INFO, 0.5 s at most)."""
        import redis

        try:
            client = redis.Redis(self.host, self.port, socket_timeout=0.5, protocol=2)
            info = client.execute_command("INFO")  # type: ignore[no-untyped-call]
        except Exception:
            return "down"
        if isinstance(info, dict):  # redis-py parses INFO into a dict
            return "leader" if info.get("role") == "leader" else "standby"
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "leader" if "role:leader" in text else "standby"


class HaSetup:
    """``--ha STORE --members N --lease-ttl S``: a failover group instead of one server."""

    def __init__(self, store: str, members: int = 2, lease_ttl_s: float = 2.0) -> None:
        if not (store in OWN_HA_STORES or store.startswith(EXTERNAL_HA_SCHEMES)):
            raise InvalidArgument(
                "--ha must be 'etcd' or 'postgresql' (the tool starts one) or a postgresql:// "
                f"or etcd:// URL, got {redact_dsn(store)!r}"
            )
        if not 2 <= members <= 5:
            raise InvalidArgument(f"members must be in 2..5, got {members}")
        if not 1.0 <= lease_ttl_s <= 30.0:
            raise InvalidArgument(f"lease_ttl_s must be in 1..30 s, got {lease_ttl_s:g}")
        self.store = store
        self.members = members
        self.lease_ttl_s = lease_ttl_s

    @property
    def own_store(self) -> bool:
        """True when the tool starts (and may stop) the store itself."""
        return self.store in OWN_HA_STORES


@dataclass(frozen=True, slots=True)
class Attach:
    """``--attach HOST:PORT[,...]``: a deployment the tool does not own (no process faults)."""

    servers: tuple[tuple[str, int], ...]
    password: str | None = None
    tls_ca: Path | None = None

    @classmethod
    def parse(cls, text: str, password: str | None, tls_ca: Path | None) -> Attach:
        """Raises InvalidArgument for a malformed address list or a missing CA file."""
        addresses = tuple(parse_address(part.strip()) for part in text.split(",") if part.strip())
        if not addresses:
            raise InvalidArgument("attach needs HOST:PORT[,HOST:PORT...]")
        if tls_ca is not None and not tls_ca.is_file():
            raise InvalidArgument(f"tls_ca {tls_ca}: no such file")
        return cls(addresses, password, tls_ca)


def client_mix(libraries: tuple[str, ...], clients: int) -> list[tuple[str, str]]:
    """(library, mode) of each client process: :data:`CLIENT_KINDS` filtered to
    ``libraries``, round-robin."""
    kinds = [kind for kind in CLIENT_KINDS if kind[0] in libraries]
    return [kinds[i % len(kinds)] for i in range(clients)]


class StoreRelays:
    """The relays to every endpoint of an external store, cut and healed together: a member
    cut off from the store reaches none of its endpoints (an etcd URL lists several)."""

    def __init__(self, relays: list[Relay]) -> None:
        self.relays = relays

    def cut(self, mode: CutMode = "silent") -> None:
        for relay in self.relays:
            relay.cut(mode)

    def heal(self) -> None:
        for relay in self.relays:
            relay.heal()


def relayed_url(run: Run, url: str) -> tuple[StoreRelays, str]:
    """Relays of the run's own to ``url`` (an external store: one per endpoint of an etcd
    URL), and the URL through them."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if parts.scheme == "etcd":
        endpoints = parse_etcd_endpoints(hosts)
    else:
        endpoints = [(parts.hostname or "127.0.0.1", parts.port or 5432)]
    relays = [run.relay(port, host) for host, port in endpoints]
    through = ",".join(f"127.0.0.1:{relay.port}" for relay in relays)
    netloc = (f"{userinfo}@" if userinfo else "") + through
    return StoreRelays(relays), urlunsplit(
        (parts.scheme, netloc, parts.path, parts.query, parts.fragment)
    )


def allowed_faults(ha: HaSetup | None, attach: Attach | None, *, root: bool) -> tuple[str, ...]:
    """The fault kinds a set-up allows (the full disk needs root for its tmpfs)."""
    if attach is not None:
        return ATTACH_FAULTS
    if ha is None:
        return tuple(k for k in SERVE_FAULTS if root or k != "disk-full")
    store = STORE_FAULTS if ha.own_store else ("store-partition",)
    return (*HA_FAULTS, *store)


def run_serve(
    options: RunOptions,
    *,
    clients: int = 4,
    ha: HaSetup | None = None,
    attach: Attach | None = None,
    libraries: tuple[str, ...] = CLIENT_LIBRARIES,
) -> RunResult:
    """Run the sequencer torture and return the verdict (see the module docstring).

    Raises:
        InvalidArgument: bad options. TortureError: the servers under test did not start.
    """
    if not 1 <= clients <= 64:
        raise InvalidArgument(f"clients must be in 1..64, got {clients}")
    require_extra(
        "redis", "chronoid torture serve (its clients and registry use redis-py)", "redis"
    )
    unknown = [lib for lib in libraries if lib not in CLIENT_LIBRARIES]
    if unknown or not libraries:
        raise InvalidArgument(
            f"--client-libs: unknown {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(CLIENT_LIBRARIES)}"
        )
    if ha is not None and attach is not None:
        raise InvalidArgument("--attach and --ha cannot be combined (attach to the group)")
    duration_s = options.time_s
    steps: list[Step]
    if options.scenario is not None:
        scenario = get_scenario(options.scenario, "serve")
        if ha is not None or attach is not None:
            raise InvalidArgument(
                f"--scenario {scenario.name} runs a standalone server; drop --ha/--attach"
            )
        steps = list(scenario.steps)
        duration_s = scenario.duration_s
        clients = scenario.options.get("clients", clients)
        kinds: tuple[str, ...] = tuple(step.kind for step in steps)
    else:
        allowed = allowed_faults(ha, attach, root=is_root())
        kinds = options.faults if options.faults is not None else allowed
        refused = [kind for kind in kinds if kind not in allowed]
        if refused:
            where = (
                "with --attach"
                if attach is not None
                else f"with --ha {redact_dsn(ha.store)}"
                if ha is not None
                else "without --ha" + ("" if is_root() else " when not root")
            )
            raise InvalidArgument(
                f"--faults {','.join(refused)} cannot be used {where}; "
                f"allowed: {', '.join(allowed)}"
            )
        target = "server" if ha is None else "leader"
        pause_s = (0.5, 3.0) if ha is None else (0.5 * ha.lease_ttl_s, 2.5 * ha.lease_ttl_s)
        steps = random_schedule(
            options.seed,
            duration_s,
            {
                kind: ("store",)
                if kind in STORE_FAULTS
                else ("clients",)
                if kind in ATTACH_FAULTS
                else (target,)
                for kind in kinds
            },
            pause_s=pause_s,
        )
    mix = client_mix(libraries, clients)
    with Run.open("serve", options) as run:
        store: Store | None = None
        relays: dict[str, Relay | StoreRelays] = {}
        servers: list[_Server] = []
        data_dir = run.supervisor.scratch / "data"
        disk: Path | None = None
        if attach is not None:
            server_addresses = list(attach.servers)
            network, how = client_network(
                run.supervisor,
                lambda: [run.relay(port, host) for host, port in server_addresses],
                prefer_netns=False,
            )
            client_ports = [network.client_port(port) for _, port in server_addresses]
            client_host = "127.0.0.1"
        else:
            network, how = client_network(run.supervisor, list, prefer_netns=True)
            if ha is None:
                if "disk-full" in kinds:
                    data_dir = run.supervisor.mount_tmpfs("data", DISK_BYTES)
                    disk = data_dir
                servers = [
                    _Server(
                        run,
                        "server",
                        free_port(),
                        ["--data-dir", str(data_dir)],
                        network.server_host,
                    )
                ]
            else:
                if ha.own_store:
                    store = start_store(run, ha.store)
                cluster = f"torture-{run.supervisor.run_id}"
                # Each member reaches the store through a relay of its own, so the leader
                # alone can be cut off from it.
                urls: dict[str, str] = {}
                for i in range(ha.members):
                    if store is not None:
                        own = run.relay(store.port)
                        relays[f"m{i}"], urls[f"m{i}"] = own, store.url(own.port)
                    else:
                        relays[f"m{i}"], urls[f"m{i}"] = relayed_url(run, ha.store)
                servers = [
                    _Server(
                        run,
                        f"m{i}",
                        free_port(),
                        [
                            *("--ha", urls[f"m{i}"], "--cluster", cluster),
                            *("--lease-ttl", f"{ha.lease_ttl_s:g}", "--member", f"m{i}"),
                        ],
                        network.server_host,
                    )
                    for i in range(ha.members)
                ]
            if isinstance(network, RelayNetwork):
                network = RelayNetwork([run.relay(s.port, s.host) for s in servers])
            client_ports = [network.client_port(s.port) for s in servers]
            client_host = network.client_host
        run.cleanups.append(network.close)
        run.notes.append(f"client network: {how}")
        if disk is not None:
            run.notes.append(f"data directory: a {DISK_BYTES // 1024} KiB tmpfs (disk-full)")
        for server in servers:
            why = server.start()
            if why is not None:
                raise TortureError(f"the server under test ({server.name}) did not start: {why}")
        if ha is not None and _leader(servers, 30.0) is None:
            raise TortureError("no member of the failover group became leader within 30 s")
        per_client_ops = -(-options.ops // clients) if options.ops else 0
        tls = ["--tls-ca", str(attach.tls_ca)] if attach is not None and attach.tls_ca else []
        worker_env = dict(run.target.env)
        if attach is not None and attach.password:
            worker_env[PASSWORD_ENV] = attach.password

        def client(
            process: str,
            ports: list[int],
            library: str,
            mode: str,
            *extra: str,
            stop_file: Path | None = None,
        ) -> Child:
            return run.worker(
                "sequencer",
                process,
                *("--ports", ",".join(str(p) for p in ports), "--host", client_host),
                *("--client", library, "--mode", mode, *tls, *extra),
                wrap=network.wrap,
                env=worker_env,
                stop_file=stop_file,
            )

        workers = [
            client(
                f"c{i}",
                client_ports,
                library,
                mode,
                *("--seed", str(options.seed * 1000 + i), "--ops", str(per_client_ops)),
            )
            for i, (library, mode) in enumerate(mix)
        ]
        # The schedule's clock starts once every client is at work (a fault at 1 s must not
        # land before the clients have had a value).
        for i, worker in enumerate(workers):
            run.first_record(f"c{i}", worker)
        rng = random.Random(options.seed)
        run_end_s = time.monotonic() + duration_s + _START_TIMEOUT_S

        def pick(step: Step) -> _Server:
            if step.target == "leader":
                return _leader(servers, 0.0) or rng.choice(servers)
            return next(s for s in servers if s.name == step.target)

        def apply(step: Step) -> None:
            started_ns = now_ns()
            if step.kind == "client-partition":
                for_a_while(step.duration_s, network.cut, network.heal)
                run.fault(
                    "client-partition",
                    "clients",
                    started_ns,
                    f"every client cut off from every server {step.duration_s:g} s "
                    f"({network.kind})",
                )
                return
            if step.kind == "store-partition":
                assert ha is not None
                member = pick(Step(0, "", "leader"))
                relay = relays[member.name]
                for_a_while(step.duration_s, relay.cut, relay.heal)
                run.fault(
                    "store-partition",
                    member.name,
                    started_ns,
                    f"cut off from the store {step.duration_s:g} s (lease TTL "
                    f"{ha.lease_ttl_s:g} s)",
                )
                return
            if step.kind in STORE_FAULTS:
                assert store is not None
                _store_fault(run, store, step, started_ns, rng)
                return
            server = pick(step)
            if step.kind == "disk-full":
                assert disk is not None
                _fill(run, server, disk, step, started_ns, run_end_s)
            elif step.kind == "kill9":
                server.kill()
                time.sleep(rng.uniform(0.05, 0.5))
                run.fault("kill9", server.name, started_ns, server.restart(run_end_s))
            elif step.kind == "sigterm":
                assert server.child is not None
                status = server.child.stop()
                outcome = f"exit {status}; " + server.restart(run_end_s)
                run.fault("sigterm", server.name, started_ns, outcome)
            elif step.kind == "pause":
                pause(server, step.duration_s)
                run.fault("pause", server.name, started_ns, f"SIGSTOP {step.duration_s:g} s")
            elif step.kind == "intruder":
                _intruder(run, server, data_dir, step, started_ns, run_end_s, client)
            elif step.kind == "delete-state":
                state = data_dir / STATE_FILE
                existed = state.exists()
                with contextlib.suppress(FileNotFoundError):
                    state.unlink()
                time.sleep(step.duration_s)
                back = state.exists()
                server.kill()
                outcome = server.restart(run_end_s)
                run.fault(
                    "delete-state",
                    server.name,
                    started_ns,
                    f"{STATE_FILE} {'deleted' if existed else 'was missing'}; "
                    f"{'written again' if back else 'still missing'} after "
                    f"{step.duration_s:g} s; kill -9; " + outcome,
                )
            else:
                raise TortureError(f"unknown serve fault {step.kind!r}")

        run.execute(
            steps,
            apply,
            duration_s=duration_s,
            workers=lambda: [w for w in workers if w.alive()],
        )
        run.stop_workers(workers)
        for server in servers:
            if server.child is not None and server.child.alive():
                server.child.stop()
        # With failover, a leader change (after a kill, a stop, a pause past the lease or a
        # store fault) skips what the old leader had reserved, as a crash does, and comes up
        # to a lease after the fault (the old lease runs out, a standby takes over).
        gap_faults = sorted(
            CRASH_FAULTS | ({"pause", "sigterm", *STORE_FAULTS} if ha is not None else set())
        )
        reach_ns = 0 if ha is None else int(3 * ha.lease_ttl_s * 1e9)
        # An attached deployment may have other clients: gaps say nothing there.
        checks = ["unique", "increasing", "realtime"] + ([] if attach is not None else ["gaps"])
        return run.finish(
            {"*": checks},
            gap_per_restart=GAP_PER_CRASH,
            gap_faults=gap_faults,
            gap_fault_reach_ns=reach_ns,
            clients=clients,
            client_mix=[f"{library}/{mode}" for library, mode in mix],
            client_network=network.kind,
            steps=len(steps),
            ha=None if ha is None else redact_dsn(ha.store),
            attach=None
            if attach is None
            else ",".join(f"{host}:{port}" for host, port in attach.servers),
            members=len(servers),
        )


def _store_fault(run: Run, store: Store, step: Step, started_ns: int, rng: random.Random) -> None:
    """``store-pause`` or ``store-kill9`` on a store the run started."""
    if step.kind == "store-pause":
        pause(store, step.duration_s)
        run.fault("store-pause", store.kind, started_ns, f"SIGSTOP {step.duration_s:g} s")
        return
    store.kill()
    time.sleep(rng.uniform(0.2, 1.0))
    outcome = store.restart()
    run.fault("store-kill9", store.kind, started_ns, f"{outcome} on its data directory")


def _fill(
    run: Run, server: _Server, disk: Path, step: Step, started_ns: int, run_end_s: float
) -> None:
    """Fill the server's tmpfs for ``duration_s``, then free it; restart the server if it
    died of it (recorded as a ``restart`` after the fault)."""
    filler = disk / "filler"
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65_536, 4096, 512):  # then the last partial page
            block = b"\0" * size
            while True:
                try:
                    count = os.write(fd, block)
                except OSError:
                    break
                written += count
                if count < size:
                    break
    finally:
        os.close(fd)
    try:
        time.sleep(step.duration_s)
    finally:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
    outcome = "the server kept running"
    if server.child is not None and not server.child.alive():
        outcome = f"the server exited ({server.child.process.returncode}); " + server.restart(
            run_end_s
        )
    run.fault(
        "disk-full",
        server.name,
        started_ns,
        f"data directory full {step.duration_s:g} s ({written // 1024} KiB filler), "
        f"then freed; {outcome}",
    )


def _leader(servers: list[_Server], timeout_s: float) -> _Server | None:
    """The member that says it leads (waiting up to ``timeout_s``), or None."""
    end_s = time.monotonic() + timeout_s
    while True:
        for server in servers:
            if server.child is not None and server.child.alive() and server.role() == "leader":
                return server
        if time.monotonic() >= end_s:
            return None
        time.sleep(0.1)


_INTRUDER_TRIES = 3


def _intruder(
    run: Run,
    server: _Server,
    data_dir: Path,
    step: Step,
    started_ns: int,
    run_end_s: float,
    client: Callable[..., Child],
) -> None:
    """A second server on the first one's data directory; if it starts, drive it."""
    # Up to three tries: a server without a data-directory lock can also fail to start by
    # racing the first one's state-file write (a95c2b7 did), which is no refusal to share.
    for _ in range(_INTRUDER_TRIES):
        intruder = _Server(run, "intruder", free_port(), ["--data-dir", str(data_dir)], server.host)
        why = intruder.start()
        if why is None:
            break
    else:
        run.fault("intruder", intruder.name, started_ns, f"refused to start: {why}")
        return
    stop_file = run.supervisor.scratch / f"stop-intruder-{started_ns}"
    driver = client(
        f"intruder{run.number('intruder')}",
        [intruder.port],
        "redis-py",
        "single",
        stop_file=stop_file,
    )
    try:
        time.sleep(step.duration_s)
    finally:
        stop_file.touch()
        with contextlib.suppress(Exception):
            driver.process.wait(timeout=5)
        driver.kill()
        intruder.kill()
    run.fault(
        "intruder",
        intruder.name,
        started_ns,
        f"a second server started on the same data directory and served {step.duration_s:g} s",
    )
    kill_started_ns = now_ns()
    server.kill()
    run.fault(
        "kill9", server.name, kill_started_ns, "after the intruder; " + server.restart(run_end_s)
    )
