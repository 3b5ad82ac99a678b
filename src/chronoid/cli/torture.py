"""``chronoid torture``: serve, lease, check, scenarios (a thin layer over the runners)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chronoid.errors import InvalidArgument, TortureError

if TYPE_CHECKING:
    from chronoid.cli import Subparsers
    from chronoid.torture.run import RunOptions, RunResult

__all__ = ["register"]

_EPILOG = (
    "Exit status: 0 only when every check passed (and no client process died of an error); "
    "1 when a check failed or the run could not be made (the message says which); 130 after "
    "Ctrl-C (the partial history is still checked). See docs/torture.md."
)


# The runners' parameter names (in their messages) as the flags of `chronoid torture`.
_FLAG_NAMES = {
    "time_s": "--time",
    "ops": "--ops",
    "pace_ms": "--pace-ms",
    "clients": "--clients",
    "members": "--members",
    "lease_ttl_s": "--lease-ttl",
    "nodes": "--nodes",
    "ttl_ms": "--ttl-ms",
    "registry": "--registry",
    "attach": "--attach",
    "tls_ca": "--tls-ca",
}


def register(subparsers: Subparsers) -> None:
    """Add ``torture`` to the ``chronoid`` parser."""
    torture = subparsers.add_parser(
        "torture",
        help="check the never-twice promise on a real deployment under faults",
        description=(
            "Start a deployment of the installed chronoid (or --chronoid-src), drive it with "
            "client processes while a nemesis injects faults, record every operation and check "
            "that no value was handed out twice, that each client's values increase, and "
            "(sequencer) that values follow real-time order."
        ),
    )
    commands = torture.add_subparsers(dest="torture_command", metavar="TARGET", required=True)

    serve = commands.add_parser(
        "serve",
        help="chronoid serve (standalone, a --ha group, or --attach to one) under kill -9, "
        "SIGSTOP, SIGTERM, a second server on its data directory, its state file deleted, a "
        "full disk, client partitions, store faults",
        description="Torture `chronoid serve`: one the tool starts (standalone or --ha), or "
        "an existing deployment (--attach; see docs/torture.md).",
        epilog=_EPILOG,
    )
    _common(serve)
    serve.add_argument(
        "--clients",
        type=int,
        default=4,
        help="client processes (default 4; (library, mode) cycle: redis-py single, chronoid "
        "batched, redis-py pipelined, chronoid named, redis-py batched, chronoid single, "
        "redis-py named)",
    )
    serve.add_argument(
        "--client-libs",
        default="redis-py,chronoid",
        metavar="LIB,...",
        help="client libraries in the mix: redis-py, chronoid (its SequencerClient); default both",
    )
    serve.add_argument(
        "--ha",
        metavar="STORE",
        default=None,
        help="a failover group instead of one server: 'etcd' or 'postgresql' (the tool "
        "starts one on spare ports and may pause, kill or cut it off) or a postgresql:// or "
        "etcd:// URL it only reaches through relays (partitions only)",
    )
    serve.add_argument(
        "--attach",
        metavar="HOST:PORT[,...]",
        default=None,
        help="torture an existing deployment (its members, comma-separated) instead of "
        "starting one: only client partitions (relays), no process faults, no gap check",
    )
    serve.add_argument(
        "--password-file",
        type=Path,
        default=None,
        help="with --attach: file holding the password the clients AUTH with",
    )
    serve.add_argument(
        "--tls-ca",
        type=Path,
        default=None,
        help="with --attach: speak TLS, checking the server's certificate against this CA "
        "(not its host name: the clients dial relays)",
    )
    serve.add_argument(
        "--members", type=int, default=2, help="servers in the --ha group (default 2)"
    )
    serve.add_argument(
        "--lease-ttl", type=float, default=2.0, help="--ha leader lease (s, default 2)"
    )
    serve.set_defaults(handler=_cmd_serve, flag_names=_FLAG_NAMES)

    lease = commands.add_parser(
        "lease",
        help="Mode C generators leasing nodes from Redis, etcd or PostgreSQL, Mode B "
        "instances with state files and a clock stepped back",
        description="Torture Mode C (a registry the tool starts: --registry) and Mode B (state "
        "files) in separate processes (see docs/torture.md).",
        epilog=_EPILOG,
    )
    _common(lease)
    lease.add_argument(
        "--registry",
        choices=("redis", "etcd", "postgresql"),
        default="redis",
        help="the Mode C registry the tool starts on spare ports (default redis, without "
        "persistence; etcd and postgresql keep their data across a restart)",
    )
    lease.add_argument("--mode-c", type=int, default=3, help="Mode C processes (default 3)")
    lease.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="nodes the Mode C processes share (default: one fewer than --mode-c, so one "
        "always stands by to take a lost node)",
    )
    lease.add_argument("--mode-b", type=int, default=1, help="Mode B processes (default 1)")
    lease.add_argument(
        "--ttl-ms", type=int, default=1000, help="Mode C lease TTL (ms, default 1000)"
    )
    lease.set_defaults(handler=_cmd_lease, flag_names=_FLAG_NAMES)

    check = commands.add_parser(
        "check",
        help="check a history file again",
        description="Check a history file (JSON lines, see docs/torture.md) and print the verdict.",
        epilog=_EPILOG,
    )
    check.add_argument("history", type=Path, help="history.jsonl of an earlier run")
    check.set_defaults(handler=_cmd_check)

    scenarios = commands.add_parser("scenarios", help="list the named fault schedules")
    scenarios.set_defaults(handler=_cmd_scenarios)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="length of the run (default 30; a --scenario has its own)",
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=0,
        help="stop after about this many operations (default 0: no limit but --time)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the fault schedule (default 1)"
    )
    parser.add_argument(
        "--scenario",
        default=None,
        metavar="NAME",
        help="a named fault schedule that reproduces one finding (chronoid torture scenarios)",
    )
    parser.add_argument(
        "--faults",
        default=None,
        metavar="KIND,...",
        help="fault kinds the random schedule may use (default: all of the target's)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for history.jsonl, verdict.txt, timeline.png and logs "
        "(default ./chronoid-torture-TARGET)",
    )
    parser.add_argument(
        "--chronoid-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="torture the chronoid of this checkout (DIR or DIR/src on PYTHONPATH) instead "
        "of the installed one",
    )
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=2.0,
        help="pause of each client between operations (ms, default 2)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw timeline.png")


def _options(args: argparse.Namespace, target: str) -> RunOptions:
    from chronoid.torture.nemesis import HA_FAULTS, LEASE_FAULTS, SERVE_FAULTS, STORE_FAULTS
    from chronoid.torture.run import RunOptions

    faults = None
    if args.faults is not None:
        known = (*SERVE_FAULTS, *STORE_FAULTS) if target == "serve" else LEASE_FAULTS
        allowed = tuple(dict.fromkeys((*known, *HA_FAULTS))) if target == "serve" else known
        faults = tuple(kind for kind in args.faults.split(",") if kind)
        unknown = [kind for kind in faults if kind not in allowed]
        if unknown:
            raise InvalidArgument(
                f"--faults: unknown kind(s) {', '.join(unknown)} for {target}; "
                f"known: {', '.join(allowed)}"
            )
    return RunOptions(
        time_s=args.time,
        ops=args.ops,
        seed=args.seed,
        scenario=args.scenario,
        out_dir=args.out if args.out is not None else Path(f"chronoid-torture-{target}"),
        chronoid_src=args.chronoid_src,
        faults=faults,
        pace_ms=args.pace_ms,
        plot=not args.no_plot,
    )


def _report(result: RunResult) -> int:
    print(result.report)
    sys.stdout.flush()
    if result.interrupted:
        return 130
    return 0 if result.ok else 1


def _cmd_serve(args: argparse.Namespace) -> int:
    from chronoid.torture.serve import Attach, HaSetup, run_serve

    ha = HaSetup(args.ha, args.members, args.lease_ttl) if args.ha is not None else None
    attach = None
    if args.attach is not None:
        password = None
        if args.password_file is not None:
            try:
                password = args.password_file.read_text().strip()
            except OSError as exc:
                raise InvalidArgument(
                    f"--password-file {args.password_file}: {exc.strerror or exc}"
                ) from None
        attach = Attach.parse(args.attach, password, args.tls_ca)
    elif args.password_file is not None or args.tls_ca is not None:
        raise InvalidArgument("--password-file and --tls-ca go with --attach")
    libraries = tuple(lib.strip() for lib in args.client_libs.split(",") if lib.strip())
    return _report(
        run_serve(
            _options(args, "serve"),
            clients=args.clients,
            ha=ha,
            attach=attach,
            libraries=libraries,
        )
    )


def _cmd_lease(args: argparse.Namespace) -> int:
    from chronoid.torture.lease import LeaseSetup, run_lease

    setup = LeaseSetup(
        mode_c=args.mode_c,
        mode_b=args.mode_b,
        nodes=args.nodes,
        ttl_ms=args.ttl_ms,
        registry=args.registry,
    )
    return _report(run_lease(_options(args, "lease"), setup))


def _cmd_check(args: argparse.Namespace) -> int:
    from chronoid.torture.checker import check, render
    from chronoid.torture.history import parse_lines

    try:
        with args.history.open(encoding="utf-8") as handle:
            history = parse_lines(handle)
    except OSError as exc:
        raise TortureError(f"cannot read {args.history}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TortureError(f"{args.history} is not a torture history: {exc}") from None
    verdict = check(history)
    print(render(verdict, history))
    return 0 if verdict.ok else 1


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from chronoid.torture.nemesis import SCENARIOS

    for scenario in SCENARIOS.values():
        print(
            f"{scenario.target:5}  {scenario.name:18}  {scenario.duration_s:4.0f} s  "
            f"{scenario.description}"
        )
    return 0
