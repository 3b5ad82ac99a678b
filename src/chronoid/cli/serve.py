"""``chronoid serve``: the sequencer service, a thin layer over :mod:`chronoid.sequencer`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chronoid.cli import flag_message
from chronoid.errors import ChronoidError, InvalidArgument
from chronoid.extras import require_extra
from chronoid.project import DOCS_URL
from chronoid.sequencer.config import format_effective, make_configurable, resolve
from chronoid.sequencer.election import DEFAULT_TTL, MAX_TTL
from chronoid.sequencer.logs import FORMATS
from chronoid.sequencer.sequences import MAX_SEQUENCES, WAIT_TIMEOUT_S, Sequences
from chronoid.sequencer.sites import first_value, site_range
from chronoid.sequencer.store import FileStore, WatermarkStore, default_data_dir

if TYPE_CHECKING:
    from chronoid.cli import Subparsers
    from chronoid.sequencer.election import Elector
    from chronoid.sequencer.health import HealthServer
    from chronoid.sequencer.server import SequencerServer, ServerConfig

__all__ = ["register"]

PASSWORD_ENV = "CHRONOID_PASSWORD"
DEFAULT_HEALTH_URL = "http://127.0.0.1:9121/readyz"

# The library's parameter names (in its messages) as the flags of `chronoid serve`.
_FLAG_NAMES = {
    "initial": "--initial",
    "site": "--site",
    "sites": "--sites",
    "max_sequences": "--max-sequences",
    "max_connections": "--max-connections",
    "idle_timeout_s": "--idle-timeout",
    "handshake_timeout_s": "--handshake-timeout",
    "request_timeout_s": "--request-timeout",
    "auth_timeout_s": "--auth-timeout",
    "lease ttl": "--lease-ttl",
}


def register(subparsers: Subparsers) -> None:
    """Add ``serve`` to the ``chronoid`` parser."""
    serve = subparsers.add_parser(
        "serve",
        help="run the sequencer service (RESP-compatible, durable)",
        description=(
            "Serve unique, increasing sequence numbers over a Redis-compatible protocol "
            "(GETSEQ, CURRENT, ...). Values are reserved durably ahead of use in --data-dir, "
            "so no value is ever handed out twice across crashes and restarts. With --ha, "
            "several servers share one PostgreSQL database or etcd cluster: one leads and "
            "issues, the others stand by and redirect clients to it (-MOVED 0 host:port). "
            "Every flag can also come from the environment (CHRONOID_PORT, CHRONOID_DATA_DIR, "
            f"...) or a TOML file (--config); see {DOCS_URL}/operations.md."
        ),
    )
    serve.add_argument(
        "--initial",
        type=int,
        default=None,
        help="first value of a new default sequence (default 1; with --sites, counted from the "
        "start of this site's range). Also the way to resume when the state file of a data "
        "directory that was used before is lost, or (--ha) when the store lost its data: "
        "give a value above every one handed out",
    )
    serve.add_argument("--port", type=int, default=10001, help="TCP port (default 10001)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; use 0.0.0.0 for every interface)",
    )
    serve.add_argument(
        "--max-connections", type=int, default=1000, help="concurrent clients (default 1000)"
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory of the durable state (default $STATE_DIRECTORY, set by systemd's "
        "StateDirectory=, else $XDG_STATE_HOME/chronoid or ~/.local/state/chronoid)",
    )
    serve.add_argument(
        "--force-initial",
        action="store_true",
        help="let --initial move the default sequence below its stored value (values may "
        "repeat: only for a fresh deployment)",
    )
    serve.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help=f"file holding the password clients must AUTH with (or set ${PASSWORD_ENV})",
    )
    serve.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate: enables TLS")
    serve.add_argument("--tls-key", type=Path, default=None, help="PEM private key for --tls-cert")
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics (Prometheus; needs prometheus-client), /healthz (alive) and "
        "/readyz (can issue now: 200, else 503) on this port of --host",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="close connections idle for this many seconds; 0 never (default 300)",
    )
    serve.add_argument(
        "--handshake-timeout",
        type=float,
        default=5.0,
        help="close a TLS connection whose handshake takes longer than this many seconds "
        "(default 5); handshakes in progress count against --max-connections",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        help="close a connection that takes longer than this many seconds to send one "
        "command, and answer -ERR to a GETSEQ whose reservation takes longer (default 10)",
    )
    serve.add_argument(
        "--auth-timeout",
        type=float,
        default=10.0,
        help="with a password: close a connection not authenticated within this many "
        "seconds (default 10)",
    )
    serve.add_argument(
        "--max-sequences",
        type=int,
        default=MAX_SEQUENCES,
        help=f"most sequence names, default included; names are never deleted "
        f"(default {MAX_SEQUENCES})",
    )
    serve.add_argument(
        "--sequences",
        metavar="NAME,NAME",
        default=None,
        help="the only sequence names clients may use besides 'default' (default: any "
        "name, up to --max-sequences)",
    )
    serve.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="auto: uvloop when installed (default), else asyncio",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="least severe level logged (default INFO)",
    )
    serve.add_argument(
        "--log-format",
        default="text",
        choices=FORMATS,
        help="log lines on stderr: text (for people, default), logfmt or json; every line "
        "has an event name and, where they apply, sequence, member and term",
    )
    ha = serve.add_argument_group("failover (see docs/sequencer.md)")
    ha.add_argument(
        "--ha",
        metavar="URL",
        default=None,
        help="keep the lease and watermarks in this store instead of --data-dir: "
        "postgresql://... or etcd://host:port[,host:port...]",
    )
    ha.add_argument(
        "--cluster",
        default="default",
        help="name of the group of servers sharing one sequence space in the store "
        "(default 'default')",
    )
    ha.add_argument(
        "--advertise",
        metavar="HOST:PORT",
        default=None,
        help="address standbys send clients to while this server leads "
        "(default --host:--port; required with --host 0.0.0.0)",
    )
    ha.add_argument(
        "--member",
        default=None,
        help="this server's name in the store (default <hostname>:<pid>)",
    )
    ha.add_argument(
        "--lease-ttl",
        type=float,
        default=DEFAULT_TTL,
        help=f"leader lease in seconds: failover after a crash takes about this long "
        f"(default {DEFAULT_TTL:g}; 1 to {MAX_TTL:g}; etcd rounds up to whole seconds, "
        "minimum 2 with its default election timeout)",
    )
    site = serve.add_argument_group("multi-site")
    site.add_argument(
        "--sites",
        type=int,
        default=1,
        help="number of sites issuing independently: each draws from its own disjoint "
        "range of values, so sites keep issuing through a partition (default 1)",
    )
    site.add_argument(
        "--site",
        type=int,
        default=0,
        help="this site's index in 0..--sites-1 (default 0)",
    )
    serve.set_defaults(handler=_serve_handler, flag_names=_FLAG_NAMES)
    # Last, so every flag above (and any added later) also reads CHRONOID_<FLAG> and --config.
    make_configurable(serve)

    probe = subparsers.add_parser(
        "probe",
        help="ask a chronoid serve health endpoint; exit 0 when it answers 200",
        description="A container health check that needs no curl: GET the URL (default "
        f"{DEFAULT_HEALTH_URL}, /healthz for liveness), print one line, exit 0 on 200 and 1 "
        "otherwise.",
    )
    probe.add_argument("url", nargs="?", default=DEFAULT_HEALTH_URL, help="endpoint to ask")
    probe.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for the answer (default 2)"
    )
    probe.set_defaults(handler=_cmd_probe, flag_names={"timeout_s": "--timeout"})


def _cmd_probe(args: argparse.Namespace) -> int:
    from chronoid.sequencer.health import probe

    ok, line = probe(args.url, args.timeout)
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _serve_handler(args: argparse.Namespace) -> int:
    """``chronoid serve``; with --log-format logfmt or json a fatal error is a log line too."""
    from chronoid.sequencer import logs

    try:
        return _cmd_serve(args)
    except ChronoidError as exc:
        if not logs.structured():
            raise  # the usual one line: chronoid: error: ...
        logging.getLogger("chronoid.sequencer").critical(
            "%s",
            flag_message(str(exc), _FLAG_NAMES),
            extra=logs.event("fatal", error_type=type(exc).__name__),
        )
        return 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from chronoid.sequencer import logs
    from chronoid.sequencer.server import bind_listener, ensure_file_limit, run

    effective = resolve(args)
    if args.print_config:
        text = format_effective(effective)
        if os.environ.get(PASSWORD_ENV):
            text += f'# password = "***"  # env {PASSWORD_ENV} (not a file key)\n'
        sys.stdout.write(text)
        return 0
    log_context = logs.configure(args.log_level, args.log_format)
    config = _server_config(args)
    password = _password(args.password_file)
    ssl_context = _ssl_context(args.tls_cert, args.tls_key)
    make_sequences = _sequences_factory(args)
    # Everything that can be refused for want of a port or descriptors is checked before
    # the data directory or the store is touched; a failure leaves nothing bound. The port
    # is bound now and listened on once the server can serve.
    ensure_file_limit(config.max_connections)
    listener = bind_listener(config.host, config.port)
    with contextlib.ExitStack() as cleanup:
        sequences: Sequences | None = None
        elector: Elector | None = None
        try:
            health = _start_health(args, cleanup)
            if args.ha is None:
                data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
                # Held until the process ends: one server per data directory.
                store = FileStore(data_dir, missing_ok=args.initial is not None)
                cleanup.callback(store.close)
                sequences = make_sequences(store)
                cleanup.callback(sequences.close)
            else:
                elector = _elector(args, config, make_sequences)
                log_context.member = elector.member
                log_context.term = lambda: elector.term
        except BaseException:
            listener.close()
            raise
        run(
            sequences,
            config,
            password=password,
            ssl_context=ssl_context,
            on_started=_on_started(health, elector is not None, config),
            event_loop=args.event_loop,
            elector=elector,
            listener=listener,
            on_stopping=_on_stopping,
        )
    return 0


def _server_config(args: argparse.Namespace) -> ServerConfig:
    from chronoid.sequencer.server import ServerConfig

    return ServerConfig(
        host=args.host,
        port=args.port,
        max_connections=args.max_connections,
        idle_timeout_s=args.idle_timeout,
        handshake_timeout_s=args.handshake_timeout,
        request_timeout_s=args.request_timeout,
        auth_timeout_s=args.auth_timeout,
    )


def _sequences_factory(args: argparse.Namespace) -> Callable[[WatermarkStore], Sequences]:
    """What builds the sequences over a store: standalone once, with --ha once per term
    (after the lease is won). Its arguments are checked now, before anything is bound."""
    allowed = _sequence_names(args.sequences)
    floor, ceiling = site_range(args.site, args.sites)
    initial = first_value(args.initial, floor, ceiling)

    def make_sequences(store: WatermarkStore) -> Sequences:
        return Sequences(
            store,
            initial,
            force_initial=args.force_initial,
            floor=floor,
            ceiling=ceiling,
            # With --ha, no wait should outlast the lease: the term is over by then anyway.
            wait_timeout_s=args.lease_ttl if args.ha is not None else WAIT_TIMEOUT_S,
            max_sequences=args.max_sequences,
            allowed=allowed,
        )

    return make_sequences


def _start_health(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> HealthServer | None:
    if args.metrics_port is None:
        return None
    require_extra("server", "serve --metrics-port", "prometheus_client")
    from chronoid.sequencer.health import HealthServer

    # Probes get /healthz 200 and /readyz 503 "starting" while the state loads.
    health = HealthServer(args.metrics_port, args.host)
    health.start()
    cleanup.callback(health.close)
    return health


def _on_started(
    health: HealthServer | None, standby: bool, config: ServerConfig
) -> Callable[[SequencerServer], None]:
    from chronoid.sequencer.notify import notify

    def on_started(server: SequencerServer) -> None:
        if health is not None:
            health.attach(server)
        # Listening, and standalone the first block is reserved (Sequences did it). A --ha
        # member is ready when it listens: standing by is its normal running state.
        role = "standby until elected" if standby else "issuing"
        notify("READY=1", f"STATUS=listening on {config.host}:{server.port}, {role}")

    return on_started


def _on_stopping(server: SequencerServer) -> None:
    from chronoid.sequencer.notify import notify

    notify("STOPPING=1", "STATUS=stopping: storing the exact next values")


def _sequence_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InvalidArgument("--sequences needs at least one name, e.g. --sequences tx,events")
    return names


def _elector(
    args: argparse.Namespace,
    config: ServerConfig,
    make_sequences: Callable[[WatermarkStore], Sequences],
) -> Elector:
    from chronoid.sequencer.election import check_lease_ttl, open_election

    if args.data_dir is not None:
        raise InvalidArgument(
            "--data-dir and --ha exclude each other: with --ha the watermarks live in the store"
        )
    if args.force_initial:
        raise InvalidArgument(
            "--force-initial cannot be used with --ha: every new leader would move the "
            "sequence back; set the value once without --ha on a fresh store instead"
        )
    check_lease_ttl(args.lease_ttl)
    if args.advertise is not None:
        address = args.advertise
    elif config.host in ("0.0.0.0", "::", ""):
        raise InvalidArgument(
            f"--advertise HOST:PORT is required with --host {config.host}: standbys must "
            "tell clients an address they can reach"
        )
    elif config.port == 0:
        raise InvalidArgument("--advertise HOST:PORT is required with --port 0")
    else:
        address = f"{config.host}:{config.port}"
    return open_election(
        args.ha,
        address=address,
        make_sequences=make_sequences,
        cluster=args.cluster,
        member=args.member,
        ttl_s=args.lease_ttl,
    )


def _password(path: Path | None) -> str | None:
    if path is not None:
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read --password-file {path}: {exc}") from exc
        if not text:
            raise InvalidArgument(f"--password-file {path} is empty; a password is required")
        return text
    return os.environ.get(PASSWORD_ENV) or None


def _ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InvalidArgument("--tls-cert and --tls-key go together; got only one of them")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot load TLS certificate {cert} / key {key}: {exc}") from exc
    return context
