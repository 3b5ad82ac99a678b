"""``chronoid serve``: the sequencer service, a thin layer over :mod:`chronoid.sequencer`."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import Any

from chronoid.errors import InvalidArgument

__all__ = ["register"]

PASSWORD_ENV = "CHRONOID_PASSWORD"


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``chronoid`` parser."""
    serve = subparsers.add_parser(
        "serve",
        help="run the sequencer service (RESP-compatible, durable)",
        description=(
            "Serve unique, increasing sequence numbers over a Redis-compatible protocol "
            "(GETSEQ, CURRENT, ...). Values are reserved durably ahead of use in --data-dir, "
            "so no value is ever handed out twice across crashes and restarts."
        ),
    )
    serve.add_argument(
        "--initial", type=int, default=1, help="first value of a new default sequence (default 1)"
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
        help="directory of the durable state (default $XDG_STATE_HOME/chronoid or "
        "~/.local/state/chronoid)",
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
        help="serve Prometheus metrics on this port of --host (needs prometheus-client)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="close connections idle for this many seconds; 0 never (default 300)",
    )
    serve.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="auto: uvloop when installed (default), else asyncio",
    )
    serve.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from chronoid.sequencer.sequences import Sequences
    from chronoid.sequencer.server import SequencerServer, ServerConfig, run
    from chronoid.sequencer.store import FileStore, default_data_dir

    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
    )
    password = _password(args.password_file)
    ssl_context = _ssl_context(args.tls_cert, args.tls_key)
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    sequences = Sequences(FileStore(data_dir), args.initial, force_initial=args.force_initial)
    on_started = None
    if args.metrics_port is not None:
        from chronoid.sequencer.metrics import serve_metrics

        def on_started(server: SequencerServer) -> None:
            serve_metrics(server, args.metrics_port, args.host)

    try:
        run(
            sequences,
            config,
            password=password,
            ssl_context=ssl_context,
            on_started=on_started,
            event_loop=args.event_loop,
        )
    finally:
        sequences.close()
    return 0


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
