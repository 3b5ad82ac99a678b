"""The long torture: ``chronoid torture serve`` (standalone, ``--ha etcd``, ``--ha
postgresql``, ``--attach``) and ``chronoid torture lease`` (on Redis, etcd and PostgreSQL
registries), 10 minutes each.

Each target runs on a seeded random schedule of every fault kind it has, with redis-py and
chronoid clients (serve: kill -9, SIGTERM, SIGSTOP, a second server on the data directory,
the state file deleted, the data directory's tmpfs full, every client partitioned; serve-ha,
serve-ha-pg: kill -9, SIGTERM and SIGSTOP of the leader, client partitions, the store paused,
killed and cut off from the leader; serve-attach: a password-protected server this script
starts, only client partitions; lease, lease-etcd, lease-pg: SIGSTOP of a Mode C process past
its lease, a Mode C process cut off from the registry, kill -9 of Mode C and Mode B
processes, the registry paused, killed and restarted (Redis without its data), a Mode B
process restarted with its clock stepped back 90 s), several hundred faults per target in 10
minutes. Updates the rows of the targets run in ``benchmarks/results/torture.md`` (the
other rows and the notes under the table stay) and copies the timeline plots to
``docs/plots/torture-<target>.png``; each run's history, verdict and logs stay in
``benchmarks/results/torture-<target>/`` (not committed).

    .venv/bin/python benchmarks/bench_torture.py                  # 600 s per target
    .venv/bin/python benchmarks/bench_torture.py --quick          # 60 s per target
    .venv/bin/python benchmarks/bench_torture.py --seconds 120 --only lease-etcd,lease-pg
    .venv/bin/python benchmarks/bench_torture.py --chronoid-src /work/wt/old   # another checkout

Exit status 1 if any run found a violation (the table says which).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from chronoid.torture.checker import check
from chronoid.torture.history import parse_lines
from environment import markdown_table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ROOT / "docs" / "plots"


TARGETS = {
    "serve": ["serve"],
    "serve-ha": ["serve", "--ha", "etcd"],
    "serve-ha-pg": ["serve", "--ha", "postgresql"],
    "serve-attach": ["serve"],  # --attach to the server attached_server() starts
    "lease": ["lease"],
    "lease-etcd": ["lease", "--registry", "etcd"],
    "lease-pg": ["lease", "--registry", "postgresql"],
}
"""Each run's name and its ``chronoid torture`` arguments."""


@contextlib.contextmanager
def attached_server() -> Iterator[list[str]]:
    """A password-protected ``chronoid serve`` of this script's own, and the ``--attach``
    arguments that reach it."""
    with tempfile.TemporaryDirectory(prefix="chronoid-bench-attach-") as scratch:
        password = Path(scratch) / "password"
        password.write_text(os.urandom(8).hex())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "chronoid", "serve", "--port", str(port)),
                *("--data-dir", f"{scratch}/data", "--password-file", str(password)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            yield ["--attach", f"127.0.0.1:{port}", "--password-file", str(password)]
        finally:
            server.kill()
            server.wait()


def run_target(
    target: str, seconds: float, seed: int, chronoid_src: str | None, label: str = ""
) -> dict[str, str]:
    if target == "serve-attach":
        with attached_server() as attach:
            return _run_target(target, seconds, seed, chronoid_src, attach, label)
    return _run_target(target, seconds, seed, chronoid_src, [], label)


def _run_target(
    target: str,
    seconds: float,
    seed: int,
    chronoid_src: str | None,
    extra: list[str],
    label: str,
) -> dict[str, str]:
    out = RESULTS / f"torture-{target}"
    command = [
        sys.executable, "-m", "chronoid", "torture", *TARGETS[target], *extra,
        "--time", f"{seconds:g}", "--seed", str(seed), "--out", str(out),
    ]  # fmt: skip
    if chronoid_src:
        command += ["--chronoid-src", chronoid_src]
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    print(completed.stdout, completed.stderr, sep="", flush=True)
    history_path = out / "history.jsonl"
    if not history_path.exists():
        return {"target": target, "verdict": f"did not run (exit {completed.returncode})"}
    with history_path.open() as handle:
        history = parse_lines(handle)
    verdict = check(history)
    if (out / "timeline.png").exists():
        PLOTS.mkdir(parents=True, exist_ok=True)
        # A labelled (shorter) run keeps its own plot beside the 10-minute one.
        slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
        shutil.copy(
            out / "timeline.png", PLOTS / f"torture-{target}{'-' + slug if slug else ''}.png"
        )
    failed = ", ".join(f"{k} {n}" for k, n in verdict.violation_counts.items()) or "none"
    network = history.meta.extra.get("client_network")
    return {
        "target": target + (f" ({network} partitions)" if network else ""),
        "seconds": f"{seconds:g}",
        "operations": f"{verdict.operations:,}",
        "values checked": f"{verdict.values_checked:,}",
        "faults": f"{sum(verdict.faults_by_kind.values())} ("
        + ", ".join(f"{k} {n}" for k, n in verdict.faults_by_kind.items())
        + ")",
        "largest gap": "-" if verdict.largest_gap is None else f"{verdict.largest_gap:,}",
        "longest unavailability": f"{verdict.longest_unavailable_ns / 1e9:.2f} s",
        "violations": failed,
        "verdict": "PASS" if verdict.ok and completed.returncode == 0 else "FAIL",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 s per target instead of 600")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per target")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--only", default=None, metavar="TARGET,...", help=f"some of {', '.join(TARGETS)}"
    )
    parser.add_argument("--chronoid-src", default=None, help="torture this checkout instead")
    parser.add_argument(
        "--label",
        default="",
        help="added to the rows' target names (e.g. '2 min'), so a short run does not "
        "replace the 10-minute rows",
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (60.0 if args.quick else 600.0)
    targets = args.only.split(",") if args.only else list(TARGETS)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"--only: unknown target(s) {', '.join(unknown)}")
    rows = [run_target(t, seconds, args.seed, args.chronoid_src, args.label) for t in targets]
    if args.label:
        for row in rows:
            name, _, rest = row["target"].partition(" (")
            row["target"] = f"{name} [{args.label}]" + (f" ({rest}" if rest else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "torture.md"
    text = merge_rows(path.read_text() if path.exists() else "", rows, args)
    path.write_text(text)
    print(text)
    return 0 if all(row.get("verdict") == "PASS" for row in rows) else 1


COLUMNS = (
    "target",
    "seconds",
    "operations",
    "values checked",
    "faults",
    "largest gap",
    "longest unavailability",
    "violations",
    "verdict",
)


def merge_rows(text: str, rows: list[dict[str, str]], args: argparse.Namespace) -> str:
    """``torture.md`` with the rows of the targets just run replaced (or added) and a line
    saying when they ran; other rows and the notes under the table stay."""
    lines = text.splitlines()
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    run_note = (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, Python "
        f"{platform.python_version()}, seed {args.seed}"
        + (f", chronoid from {args.chronoid_src}" if args.chronoid_src else "")
        + f": {', '.join(row['target'].split(' (')[0] for row in rows)} "
        f"({rows[0].get('seconds', '?')} s each)."
    )
    header, separator, *new = markdown_table(
        COLUMNS, [[row.get(c, "") for c in COLUMNS] for row in rows], align="l" * len(COLUMNS)
    )
    if not table:
        return "\n".join(
            [
                "# Torture (`benchmarks/bench_torture.py`)",
                "",
                "Every fault kind of each target on a seeded random schedule; plots in "
                "`docs/plots/torture-*.png`.",
                "",
                header,
                separator,
                *new,
                "",
                run_note,
                "",
            ]
        )
    start, end = table[0], table[-1] + 1
    names = {row["target"].split(" (")[0] for row in rows}
    kept = [
        line
        for line in lines[start + 2 : end]
        if line.split("|")[1].strip().split(" (")[0] not in names
    ]
    return "\n".join([*lines[: start + 2], *kept, *new, *lines[end:], "", run_note, ""]).replace(
        "\n\n\n", "\n\n"
    )


if __name__ == "__main__":
    sys.exit(main())
