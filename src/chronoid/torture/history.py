"""The history format: one JSON object per line, written by every process of a torture run.

This module is standard library only and imports nothing from chronoid, because the worker
processes (:mod:`chronoid.torture.workers`) load it by file path while running *the chronoid
under test*, which may be an older checkout without a ``chronoid.torture`` package.

Three kinds of record (``"type"``):

``meta``   once, first: the target, the seed, the scenario, and which checks apply to which key
           (``"checks": {"default": ["unique", "increasing", "realtime", "gaps"], ...}``; the
           key ``"*"`` applies to keys not listed), ``gap_per_restart`` (values, the documented
           gap one crash may leave).
``op``     one operation of one process: ``process`` (a name; a restarted process gets a new
           one, ``mc0.2``), ``op`` (``getseq``, ``next_id``), ``key`` (the sequence name or the
           ID space whose uniqueness is checked), ``invoke_ns`` and ``complete_ns`` (None: it
           never completed), ``status`` (``ok``: the values were handed out; ``fail``: it
           certainly consumed nothing; ``info``: unknown, e.g. a timeout), then the outcome:
           ``value`` and ``count`` (the consecutive values value..value+count-1, a sequencer's
           ``GETSEQ count``), ``ids`` (a list of IDs in the order received) or ``runs`` (the
           same as ``[first, count]`` pairs of consecutive IDs, which keeps a Mode C batch
           short), or ``error`` (one line).
``fault``  one fault the nemesis injected: ``kind`` (``kill9``, ``pause``, ...), ``target``
           (the process it hit), ``start_ns``, ``end_ns`` (None for an instant), ``detail``.

Times are ``CLOCK_MONOTONIC`` in ns (``time.monotonic_ns``), one clock for every process on
the host, so one process's completion can be compared with another's invocation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

FORMAT_VERSION = 1
"""Written into the meta record; a reader refuses other versions."""

STATUSES = ("ok", "fail", "info")
"""``ok``: handed out; ``fail``: certainly consumed nothing; ``info``: unknown."""

CHECKS = ("unique", "increasing", "realtime", "gaps")
"""The checks a key can ask for (see :mod:`chronoid.torture.checker`)."""

now_ns = time.monotonic_ns
"""The one clock every record is stamped with (ns)."""


@dataclass(frozen=True, slots=True)
class Meta:
    """What was run and which checks apply (the first record of a history)."""

    target: str
    checks: dict[str, tuple[str, ...]]
    gap_per_restart: int = 0
    seed: int | None = None
    scenario: str | None = None
    started_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def checks_for(self, key: str) -> tuple[str, ...]:
        """The checks that apply to ``key`` (its own entry, else ``"*"``, else none)."""
        return self.checks.get(key, self.checks.get("*", ()))


@dataclass(frozen=True, slots=True)
class Op:
    """One operation; ``ranges`` are its values as (first, count) runs, empty unless ok."""

    index: int
    process: str
    op: str
    key: str
    invoke_ns: int
    complete_ns: int | None
    status: str
    ranges: tuple[tuple[int, int], ...] = ()
    error: str | None = None
    requested: int = 1
    """Values asked for (a ``GETSEQ count``); what an ``info`` op may have consumed."""

    @property
    def value_count(self) -> int:
        """How many values (IDs) the operation got."""
        return sum(count for _, count in self.ranges)

    @property
    def first(self) -> int:
        """Its smallest value (only for an ok op)."""
        return min(start for start, _ in self.ranges)

    @property
    def last(self) -> int:
        """Its largest value (only for an ok op)."""
        return max(start + count - 1 for start, count in self.ranges)

    def describe(self, started_ns: int = 0) -> str:
        """One line for a report: who, when (s since ``started_ns``), what it got."""
        begin = (self.invoke_ns - started_ns) / 1e9
        end = (
            "never" if self.complete_ns is None else f"{(self.complete_ns - started_ns) / 1e9:.3f}"
        )
        if self.status == "ok":
            shown = ", ".join(
                str(start) if count == 1 else f"{start}..{start + count - 1}"
                for start, count in self.ranges[:4]
            )
            if len(self.ranges) > 4:
                shown += f", ... ({self.value_count} values)"
            outcome = shown
        else:
            outcome = f"{self.status}: {self.error or 'no reply'}"
        return (
            f"#{self.index} {self.process} {self.op} {self.key} "
            f"[{begin:.3f} s .. {end} s] -> {outcome}"
        )


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault (``end_ns`` None: an instant, such as kill -9)."""

    kind: str
    target: str
    start_ns: int
    end_ns: int | None = None
    detail: str = ""

    def describe(self, started_ns: int = 0) -> str:
        """One line for a report."""
        begin = (self.start_ns - started_ns) / 1e9
        span = "" if self.end_ns is None else f"..{(self.end_ns - started_ns) / 1e9:.3f}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} {self.target} at {begin:.3f}{span} s{detail}"


@dataclass(slots=True)
class History:
    """A whole history: the meta record, the operations in file order, the faults."""

    meta: Meta
    ops: list[Op]
    faults: list[Fault]


class HistoryWriter:
    """Appends records to a history file, one line each, flushed at once.

    A line is handed to the kernel as soon as it is written, so a process killed with
    SIGKILL loses only the operation it was in (whose reply it never delivered either).
    """

    def __init__(self, path: str | Path) -> None:
        self._file: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def meta(
        self,
        target: str,
        checks: dict[str, list[str]],
        *,
        gap_per_restart: int = 0,
        seed: int | None = None,
        scenario: str | None = None,
        started_ns: int | None = None,
        **extra: Any,
    ) -> None:
        """Write the meta record (first in a history)."""
        self.write(
            {
                "type": "meta",
                "version": FORMAT_VERSION,
                "target": target,
                "checks": checks,
                "gap_per_restart": gap_per_restart,
                "seed": seed,
                "scenario": scenario,
                "started_ns": now_ns() if started_ns is None else started_ns,
                "extra": extra,
            }
        )

    def op(
        self,
        process: str,
        op: str,
        key: str,
        invoke_ns: int,
        complete_ns: int | None,
        status: str,
        *,
        value: int | None = None,
        count: int = 1,
        ids: list[int] | None = None,
        error: str | None = None,
    ) -> None:
        """Write one operation (see the module docstring for the fields); ``ids`` are
        written as ``runs``."""
        record: dict[str, Any] = {
            "type": "op",
            "process": process,
            "op": op,
            "key": key,
            "invoke_ns": invoke_ns,
            "complete_ns": complete_ns,
            "status": status,
        }
        if value is not None:
            record["value"] = value
        if count != 1:
            record["count"] = count
        if ids is not None:
            record["runs"] = [list(run) for run in runs(ids)]
        if error is not None:
            record["error"] = error
        self.write(record)

    def fault(
        self, kind: str, target: str, start_ns: int, end_ns: int | None = None, detail: str = ""
    ) -> None:
        """Write one injected fault."""
        self.write(
            {
                "type": "fault",
                "kind": kind,
                "target": target,
                "start_ns": start_ns,
                "end_ns": end_ns,
                "detail": detail,
            }
        )

    def write(self, record: dict[str, Any]) -> None:
        """Write one record as a line."""
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def runs(ids: list[int]) -> tuple[tuple[int, int], ...]:
    """``ids`` as (first, count) runs of consecutive values, in the order given."""
    out: list[tuple[int, int]] = []
    start = previous = None
    for value in ids:
        if previous is not None and start is not None and value == previous + 1:
            previous = value
            continue
        if start is not None and previous is not None:
            out.append((start, previous - start + 1))
        start = previous = value
    if start is not None and previous is not None:
        out.append((start, previous - start + 1))
    return tuple(out)


def _int(record: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key!r} must be an integer, got {value!r}")
    return value


def _str(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key!r} must be a non-empty string, got {value!r}")
    return value


def parse_meta(record: dict[str, Any]) -> Meta:
    """A meta record, validated (ValueError says what is wrong)."""
    if record.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"history format version {record.get('version')!r} is not {FORMAT_VERSION}"
        )
    checks = record.get("checks")
    if not isinstance(checks, dict):
        raise ValueError(f"'checks' must be an object of key -> list of checks, got {checks!r}")
    parsed: dict[str, tuple[str, ...]] = {}
    for key, names in checks.items():
        if not isinstance(names, list) or any(name not in CHECKS for name in names):
            raise ValueError(f"checks for {key!r} must be a list of {', '.join(CHECKS)}: {names!r}")
        parsed[key] = tuple(names)
    extra = record.get("extra") or {}
    seed = _int(record, "seed", optional=True)
    scenario = record.get("scenario")
    return Meta(
        target=_str(record, "target"),
        checks=parsed,
        gap_per_restart=_int(record, "gap_per_restart"),
        seed=seed,
        scenario=scenario if isinstance(scenario, str) else None,
        started_ns=_int(record, "started_ns"),
        extra=extra if isinstance(extra, dict) else {},
    )


def parse_op(record: dict[str, Any], index: int) -> Op:
    """An op record, validated; ``index`` is its position among the history's ops."""
    status = record.get("status")
    if status not in STATUSES:
        raise ValueError(f"'status' must be one of {', '.join(STATUSES)}, got {status!r}")
    invoke_ns = _int(record, "invoke_ns")
    complete_ns = _int(record, "complete_ns", optional=True)
    if complete_ns is not None and complete_ns < invoke_ns:
        raise ValueError(f"complete_ns {complete_ns} is before invoke_ns {invoke_ns}")
    ranges: tuple[tuple[int, int], ...] = ()
    requested = record.get("count", 1)
    if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
        raise ValueError(f"'count' must be an integer >= 1, got {requested!r}")
    outcomes = [name for name in ("value", "ids", "runs") if name in record]
    if len(outcomes) > 1:
        raise ValueError(f"only one of 'value', 'ids', 'runs' may be given, got {outcomes}")
    if outcomes and status != "ok":
        # Ignoring them would leave values out of the checks (a duplicate among them).
        raise ValueError(f"a {status} operation carries no values, got {outcomes[0]!r}")
    if status == "ok":
        if complete_ns is None:
            raise ValueError("an ok operation must have a complete_ns")
        if "value" in record:
            ranges = ((_int(record, "value"), requested),)
        elif "ids" in record:
            ids = record["ids"]
            if not isinstance(ids, list) or not ids:
                raise ValueError("'ids' must be a non-empty list of integers")
            if any(not isinstance(v, int) or isinstance(v, bool) for v in ids):
                raise ValueError("'ids' must hold integers only")
            ranges = runs(ids)
        elif "runs" in record:
            pairs = record["runs"]
            if not isinstance(pairs, list) or not pairs:
                raise ValueError("'runs' must be a non-empty list of [first, count] pairs")
            checked = []
            for pair in pairs:
                if (
                    not isinstance(pair, list)
                    or len(pair) != 2
                    or any(not isinstance(v, int) or isinstance(v, bool) for v in pair)
                    or pair[1] < 1
                ):
                    raise ValueError(f"a run must be [first, count >= 1], got {pair!r}")
                checked.append((pair[0], pair[1]))
            ranges = tuple(checked)
        else:
            raise ValueError("an ok operation needs 'value' (and 'count'), 'ids' or 'runs'")
    error = record.get("error")
    return Op(
        index=index,
        process=_str(record, "process"),
        op=_str(record, "op"),
        key=_str(record, "key"),
        invoke_ns=invoke_ns,
        complete_ns=complete_ns,
        status=status,
        ranges=ranges,
        error=str(error) if error is not None else None,
        requested=requested,
    )


def parse_fault(record: dict[str, Any]) -> Fault:
    """A fault record, validated."""
    return Fault(
        kind=_str(record, "kind"),
        target=_str(record, "target"),
        start_ns=_int(record, "start_ns"),
        end_ns=_int(record, "end_ns", optional=True),
        detail=str(record.get("detail") or ""),
    )


def parse_lines(lines: Any) -> History:
    """A history from an iterable of lines (ValueError names the bad line and why)."""
    meta: Meta | None = None
    ops: list[Op] = []
    faults: list[Fault] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("a record must be a JSON object")
            kind = record.get("type")
            if kind == "meta":
                if meta is not None:
                    raise ValueError("a second meta record")
                meta = parse_meta(record)
            elif kind == "op":
                ops.append(parse_op(record, len(ops)))
            elif kind == "fault":
                faults.append(parse_fault(record))
            else:
                raise ValueError(f"unknown record type {kind!r}")
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    if meta is None:
        raise ValueError("no meta record (the first line of a history says what was run)")
    return History(meta, ops, faults)
