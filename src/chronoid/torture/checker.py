"""The checker: a history in, a verdict out. Sans-I/O: no process, socket or file here.

The checks (each applies to the keys the history's meta record names, see
:mod:`chronoid.torture.history`):

``unique``      no value or ID handed out twice (ranges of consecutive values included).
``increasing``  each process's values strictly increase, in the order it recorded them.
``realtime``    if operation A completed before B was invoked, A's values are all smaller
                than B's: with ``unique``, exactly the linearizability of fetch-and-increment
                for a counter that may skip values (order the operations by value).
``gaps``        between two consecutive values handed out, at most ``gap_per_restart`` values
                per crash fault in between (the documented loss of a kill -9; the kinds are
                :data:`CRASH_FAULTS`, or the meta record's ``extra.gap_faults``) plus what
                operations with an unknown outcome (``info``) may have consumed. A fault
                counts from its start until ``extra.gap_fault_reach_ns`` after its end (0 by
                default): in a failover group the leader change a fault causes comes up to a
                lease later.

An operation that failed (``fail``) or whose outcome is unknown (``info``, or one that never
completed) constrains nothing and is counted apart; it only widens the allowed gap.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from chronoid.torture.history import CHECKS, Fault, History, Op

__all__ = ["CRASH_FAULTS", "Verdict", "Violation", "check"]

CRASH_FAULTS = frozenset({"kill9", "intruder", "delete-state", "registry-restart", "disk-full"})
"""Fault kinds after which the documented gap (``gap_per_restart`` values) may appear."""

AROUND_NS = 2_000_000_000
"""Faults this close (ns) to a violation's operations are shown with it."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken promise, with the operations that show it."""

    check: str
    key: str
    message: str
    ops: tuple[Op, ...]
    at_ns: int
    """When it became visible (the later operation's invocation, ns)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of :func:`check`: counts, the largest figures, and the violations."""

    target: str
    operations: int
    by_status: dict[str, int]
    never_completed: int
    faults_by_kind: dict[str, int]
    values_checked: int
    largest_gap: int | None
    longest_unavailable_ns: int
    checks_run: dict[str, int]
    """Per check: how many keys it ran on."""
    violation_counts: dict[str, int]
    """Per check: how many violations it found (all of them, not only those kept)."""
    duplicated_values: int
    violations: tuple[Violation, ...] = field(default=())
    """The first violations in time order (at most ``max_violations`` of :func:`check`)."""
    unnamed_keys: dict[str, int] = field(default_factory=dict)
    """Keys with values that no entry of the meta record's ``checks`` names (neither their
    own nor ``"*"``), and how many values each got: nothing checked them."""

    @property
    def ok(self) -> bool:
        """True only when every check passed, something was checked, and no key with values
        was left out by the meta record (an explicit ``[]`` opts a key out)."""
        return not self.violation_counts and self.values_checked > 0 and not self.unnamed_keys


def check(history: History, *, max_violations: int = 20) -> Verdict:
    """Check every key of ``history`` with the checks its meta record names."""
    meta = history.meta
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history.ops:
        by_key[op.key].append(op)
    gap_faults = meta.extra.get("gap_faults")
    kinds = frozenset(gap_faults) if isinstance(gap_faults, list) else CRASH_FAULTS
    reach = meta.extra.get("gap_fault_reach_ns")
    reach_ns = reach if isinstance(reach, int) and reach > 0 else 0
    crashes = sorted(
        (f.start_ns, (f.end_ns or f.start_ns) + reach_ns) for f in history.faults if f.kind in kinds
    )
    found: list[Violation] = []
    counts: Counter[str] = Counter()
    checks_run: Counter[str] = Counter()
    duplicated = 0
    largest_gap: int | None = None
    values_checked = 0
    unnamed: dict[str, int] = {}
    for key, ops in sorted(by_key.items()):
        wanted = meta.checks_for(key)
        ok_ops = [op for op in ops if op.status == "ok"]
        if ok_ops and key not in meta.checks and "*" not in meta.checks:
            unnamed[key] = sum(op.value_count for op in ok_ops)
        if wanted:
            values_checked += sum(op.value_count for op in ok_ops)
        for name in CHECKS:
            if name not in wanted:
                continue
            checks_run[name] += 1
            if name == "unique":
                violations, duplicated_here = _unique(key, ok_ops)
                duplicated += duplicated_here
            elif name == "increasing":
                violations = _increasing(key, ok_ops)
            elif name == "realtime":
                violations = _realtime(key, ok_ops)
            else:
                violations, gap = _gaps(key, ops, meta.gap_per_restart, crashes)
                if gap is not None and (largest_gap is None or gap > largest_gap):
                    largest_gap = gap
            counts[name] += len(violations)
            found.extend(violations)
    found.sort(key=lambda v: v.at_ns)
    statuses = Counter(op.status for op in history.ops)
    return Verdict(
        target=meta.target,
        operations=len(history.ops),
        by_status={s: statuses.get(s, 0) for s in ("ok", "fail", "info")},
        never_completed=sum(1 for op in history.ops if op.complete_ns is None),
        faults_by_kind=dict(sorted(Counter(f.kind for f in history.faults).items())),
        values_checked=values_checked,
        largest_gap=largest_gap,
        longest_unavailable_ns=_longest_unavailable(history.ops),
        checks_run=dict(checks_run),
        violation_counts={name: n for name, n in counts.items() if n},
        duplicated_values=duplicated,
        violations=tuple(found[:max_violations]),
        unnamed_keys=unnamed,
    )


def _unique(key: str, ops: list[Op]) -> tuple[list[Violation], int]:
    # Every run (first, count) of every op, by first value; an overlap with the run that
    # reaches furthest so far is a value handed out twice. Overlaps between the same two
    # operations make one violation (a Mode B batch repeats value by value, not in runs).
    runs = sorted(
        ((first, first + count - 1, op) for op in ops for first, count in op.ranges),
        key=lambda run: (run[0], run[1]),
    )
    pairs: dict[tuple[int, int], list[int]] = {}
    order: list[tuple[Op, Op]] = []
    duplicated = 0
    reach: tuple[int, Op] | None = None
    for first, last, op in runs:
        if reach is not None and first <= reach[0]:
            other = reach[1]
            overlap_end = min(last, reach[0])
            duplicated += overlap_end - first + 1
            pair = (other.index, op.index)
            if pair not in pairs:
                pairs[pair] = [first, overlap_end, 0]
                order.append((other, op))
            pairs[pair][2] += overlap_end - first + 1
        if reach is None or last > reach[0]:
            reach = (last, op)
    violations = []
    for other, op in order:
        first, overlap_end, count = pairs[(other.index, op.index)]
        shown = str(first) if overlap_end == first else f"{first}..{overlap_end}"
        if count > overlap_end - first + 1:
            shown += f" and {count - (overlap_end - first + 1)} more"
        where = "the same operation" if other is op else f"{other.process} and {op.process}"
        violations.append(
            Violation(
                "unique",
                key,
                f"{key}: {shown} handed out twice ({where})",
                (other, op) if other is not op else (op,),
                max(other.invoke_ns, op.invoke_ns),
            )
        )
    return violations, duplicated


def _increasing(key: str, ops: list[Op]) -> list[Violation]:
    violations: list[Violation] = []
    last_by_process: dict[str, tuple[int, Op]] = {}
    for op in ops:
        previous = last_by_process.get(op.process)
        runs = op.ranges
        # Inside one op the runs must increase too (a batch of IDs in the order received).
        for (first, count), (next_first, _) in itertools.pairwise(runs):
            if next_first <= first + count - 1:
                violations.append(
                    Violation(
                        "increasing",
                        key,
                        f"{key}: {op.process} got {next_first} after {first + count - 1} "
                        "in one operation",
                        (op,),
                        op.invoke_ns,
                    )
                )
                break
        if previous is not None and runs[0][0] <= previous[0]:
            violations.append(
                Violation(
                    "increasing",
                    key,
                    f"{key}: {op.process} got {runs[0][0]} after {previous[0]}",
                    (previous[1], op),
                    op.invoke_ns,
                )
            )
        last = runs[-1][0] + runs[-1][1] - 1
        if previous is None or last > previous[0]:
            last_by_process[op.process] = (last, op)
    return violations


def _realtime(key: str, ops: list[Op]) -> list[Violation]:
    # Sweep by invocation; every op that completed strictly before the current invocation is
    # a predecessor; the one with the largest value must be below the current op's smallest.
    # The operations of one process stale against the same predecessor make one violation.
    by_completion = sorted(ops, key=lambda op: op.complete_ns or 0)
    found: dict[tuple[int, str], list[Op]] = {}
    done = 0
    best: tuple[int, Op] | None = None
    for op in sorted(ops, key=lambda op: op.invoke_ns):
        while done < len(by_completion) and (by_completion[done].complete_ns or 0) < op.invoke_ns:
            finished = by_completion[done]
            if best is None or finished.last > best[0]:
                best = (finished.last, finished)
            done += 1
        if best is not None and op.first <= best[0]:
            found.setdefault((best[1].index, op.process), [best[1]]).append(op)
    violations = []
    for (_, process), (earlier, op, *more) in found.items():
        gap_s = (op.invoke_ns - (earlier.complete_ns or 0)) / 1e9
        also = f" (and {len(more)} later operations of {process})" if more else ""
        violations.append(
            Violation(
                "realtime",
                key,
                f"{key}: {process} got {op.first}, not above {earlier.last} that "
                f"{earlier.process} had received {gap_s:.3f} s before this was invoked{also}",
                (earlier, op),
                op.invoke_ns,
            )
        )
    return violations


def _gaps(
    key: str, ops: list[Op], gap_per_restart: int, crashes: list[tuple[int, int]]
) -> tuple[list[Violation], int | None]:
    ok_runs = sorted(
        (
            (first, first + count - 1, op)
            for op in ops
            if op.status == "ok"
            for first, count in op.ranges
        ),
        key=lambda run: (run[0], run[1]),
    )
    # Operations with an unknown outcome, by invocation: each may have consumed its count
    # anywhere between its invocation and its completion (never, if it did not complete).
    unknown = sorted(
        ((op.invoke_ns, op.complete_ns, op.requested) for op in ops if op.status == "info"),
        key=lambda item: item[0],
    )
    unknown_invokes = [invoke for invoke, _, _ in unknown]
    violations: list[Violation] = []
    largest: int | None = None
    for (_, last, before), (first, _, after) in itertools.pairwise(ok_runs):
        gap = first - last - 1
        if gap <= 0:
            continue
        largest = gap if largest is None else max(largest, gap)
        start_ns = min(before.invoke_ns, after.invoke_ns)
        end_ns = max(before.complete_ns or 0, after.complete_ns or 0)
        # Crash faults whose span (kill to restart) overlaps the two operations' span.
        crashed = sum(1 for begin, finish in crashes if begin <= end_ns and finish >= start_ns)
        hi = bisect.bisect_right(unknown_invokes, end_ns)
        consumed = sum(
            requested
            for _, complete, requested in unknown[:hi]
            if complete is None or complete >= start_ns
        )
        allowed = gap_per_restart * crashed + consumed
        if gap > allowed:
            violations.append(
                Violation(
                    "gaps",
                    key,
                    f"{key}: {gap} values skipped between {last} and {first}, more than the "
                    f"{allowed} allowed ({crashed} crash(es) x {gap_per_restart} + "
                    f"{consumed} requested by operations with an "
                    "unknown outcome)",
                    (before, after),
                    max(before.invoke_ns, after.invoke_ns),
                )
            )
    return violations, largest


def _longest_unavailable(ops: Iterable[Op]) -> int:
    """The longest time (ns) in which no operation succeeded, from the first invocation to
    the last event of the history."""
    ops = list(ops)
    if not ops:
        return 0
    start_ns = min(op.invoke_ns for op in ops)
    end_ns = max(op.complete_ns or op.invoke_ns for op in ops)
    points = heapq.merge(
        [start_ns], sorted(op.complete_ns for op in ops if op.status == "ok" and op.complete_ns)
    )
    longest = 0
    previous = start_ns
    for point in [*points, end_ns]:
        longest = max(longest, point - previous)
        previous = max(previous, point)
    return longest


def faults_around(violation: Violation, faults: Iterable[Fault]) -> list[Fault]:
    """The faults that overlap the violation's operations, widened by 2 s on each side."""
    begin_ns = min(op.invoke_ns for op in violation.ops) - AROUND_NS
    end_ns = max(op.complete_ns or op.invoke_ns for op in violation.ops) + AROUND_NS
    return [f for f in faults if f.start_ns <= end_ns and (f.end_ns or f.start_ns) >= begin_ns]


def render(verdict: Verdict, history: History, *, shown: int = 3) -> str:
    """The verdict as text: counts, each check's result, and the first violations in detail."""
    meta = history.meta
    started_ns = meta.started_ns
    status = verdict.by_status
    lines = [
        f"target: {meta.target}"
        + (f", scenario {meta.scenario}" if meta.scenario else "")
        + (f", seed {meta.seed}" if meta.seed is not None else ""),
        f"operations: {verdict.operations} (ok {status['ok']}, fail {status['fail']}, "
        f"unknown {status['info']}, never completed {verdict.never_completed})",
        "faults: "
        + (
            ", ".join(f"{kind} {n}" for kind, n in verdict.faults_by_kind.items())
            if verdict.faults_by_kind
            else "none"
        ),
        f"values checked: {verdict.values_checked}; largest gap: "
        + ("none" if verdict.largest_gap is None else str(verdict.largest_gap))
        + f"; longest unavailability: {verdict.longest_unavailable_ns / 1e9:.3f} s",
    ]
    results = []
    for name in CHECKS:
        if name not in verdict.checks_run:
            continue
        bad = verdict.violation_counts.get(name, 0)
        extra = f", {verdict.duplicated_values} values twice" if name == "unique" and bad else ""
        # unique counts pairs of operations that share values; the values are counted apart
        results.append(f"{name} " + (f"FAILED ({bad} violations{extra})" if bad else "ok"))
    lines.append("checks: " + (", ".join(results) if results else "none"))
    if verdict.unnamed_keys:
        lines.append(
            "keys no check named: "
            + ", ".join(f"{key} ({n} values)" for key, n in verdict.unnamed_keys.items())
        )
    if verdict.ok:
        lines.append("verdict: PASS")
        return "\n".join(lines)
    if verdict.values_checked == 0:
        lines.append("verdict: FAIL (no value was handed out, so nothing was checked)")
    elif not verdict.violation_counts:
        lines.append("verdict: FAIL (values under keys no check named were not checked)")
    else:
        total = sum(verdict.violation_counts.values())
        lines.append(f"verdict: FAIL ({total} violations)")
    for number, violation in enumerate(verdict.violations[:shown], 1):
        label = "first violation" if number == 1 else f"violation {number}"
        lines.append(f"{label} ({violation.check}): {violation.message}")
        lines.extend(f"    {op.describe(started_ns)}" for op in violation.ops)
        around = faults_around(violation, history.faults)
        if around:
            lines.append("  faults around it:")
            lines.extend(f"    {fault.describe(started_ns)}" for fault in around)
        else:
            lines.append("  faults around it: none within 2 s")
    return "\n".join(lines)
