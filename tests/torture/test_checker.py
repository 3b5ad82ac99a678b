"""The checker on synthetic histories: known violations are found, clean histories pass."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronoid.torture.checker import check, faults_around, render
from chronoid.torture.history import History, HistoryWriter, parse_lines

ALL = ["unique", "increasing", "realtime", "gaps"]
MS = 1_000_000


def meta(checks: dict[str, list[str]] | None = None, gap: int = 0) -> dict[str, Any]:
    return {
        "type": "meta",
        "version": 1,
        "target": "serve",
        "checks": checks or {"*": ALL},
        "gap_per_restart": gap,
        "started_ns": 0,
    }


def op(
    process: str,
    invoke_ms: float,
    complete_ms: float | None,
    value: int | None = None,
    *,
    count: int = 1,
    status: str = "ok",
    key: str = "default",
    ids: list[int] | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "op",
        "process": process,
        "op": "getseq",
        "key": key,
        "invoke_ns": int(invoke_ms * MS),
        "complete_ns": None if complete_ms is None else int(complete_ms * MS),
        "status": status,
        "count": count,
    }
    if value is not None:
        record["value"] = value
    if ids is not None:
        record["ids"] = ids
    if status != "ok":
        record["error"] = "TimeoutError: timed out"
    return record


def fault(kind: str, at_ms: float, end_ms: float | None = None) -> dict[str, Any]:
    return {
        "type": "fault",
        "kind": kind,
        "target": "server",
        "start_ns": int(at_ms * MS),
        "end_ns": None if end_ms is None else int(end_ms * MS),
        "detail": "",
    }


def history(*records: dict[str, Any], head: dict[str, Any] | None = None) -> History:
    return parse_lines(json.dumps(r) for r in (head or meta(), *records))


def test_clean_history_passes() -> None:
    h = history(
        op("a", 0, 1, 1),
        op("b", 0.5, 2, 2, count=3),
        op("a", 2, 3, 5),
        op("b", 2.5, 4, 6),
    )
    verdict = check(h)
    assert verdict.ok, render(verdict, h)
    assert verdict.values_checked == 6
    assert verdict.largest_gap is None
    assert "verdict: PASS" in render(verdict, h)


def test_duplicate_is_found_with_both_operations_and_the_fault_around_it() -> None:
    h = history(
        op("a", 0, 1, 1, count=10),
        fault("intruder", 1.5, 3),
        op("b", 2, 2.5, 5),
    )
    verdict = check(h)
    assert not verdict.ok
    assert verdict.violation_counts["unique"] == 1
    assert verdict.duplicated_values == 1
    first = verdict.violations[0]
    assert first.check in ("unique", "realtime")
    text = render(verdict, h)
    assert "5 handed out twice (a and b)" in text
    assert "intruder server at 0.002..0.003 s" in text
    unique = next(v for v in verdict.violations if v.check == "unique")
    assert [o.process for o in unique.ops] == ["a", "b"]
    assert [f.kind for f in faults_around(unique, h.faults)] == ["intruder"]


def test_duplicate_ids_inside_one_batch() -> None:
    h = history(op("a", 0, 1, ids=[3, 4, 3]), head=meta({"*": ["unique"]}))
    verdict = check(h)
    assert verdict.violation_counts == {"unique": 1}
    assert "the same operation" in verdict.violations[0].message


def test_reordering_within_one_client_is_found() -> None:
    # Overlapping in time with nothing else, so only the per-client order is broken.
    h = history(op("a", 0, 1, 10), op("a", 2, 3, 7), head=meta({"*": ["unique", "increasing"]}))
    verdict = check(h)
    assert verdict.violation_counts == {"increasing": 1}
    assert "a got 7 after 10" in verdict.violations[0].message


def test_stale_value_after_failover_breaks_real_time_order() -> None:
    # a got 100 from the old leader and was done before b asked the new one, which answered
    # a smaller (unused) value: unique and per-client order hold, linearizability does not.
    h = history(
        op("a", 0, 1, 100),
        fault("kill9", 1.2),
        op("b", 2, 3, 50),
        head=meta({"*": ["unique", "increasing", "realtime"]}),
    )
    verdict = check(h)
    assert verdict.violation_counts == {"realtime": 1}
    violation = verdict.violations[0]
    assert [o.process for o in violation.ops] == ["a", "b"]
    assert "b got 50, not above 100" in violation.message


def test_concurrent_operations_may_complete_in_either_order() -> None:
    # b was invoked before a completed: either order is linearizable.
    h = history(op("a", 0, 3, 2), op("b", 1, 2, 1))
    assert check(h).ok


def test_operation_that_never_completed_constrains_nothing_but_widens_the_gap() -> None:
    h = history(
        op("a", 0, 1, 1),
        op("b", 1.5, None, count=50, status="info"),
        op("a", 2, 3, 52),
    )
    verdict = check(h)
    assert verdict.ok, render(verdict, h)
    assert verdict.never_completed == 1
    assert verdict.by_status == {"ok": 2, "fail": 0, "info": 1}
    assert verdict.largest_gap == 50
    text = render(verdict, h)
    assert "never completed 1" in text


def test_gap_beyond_the_documented_bound_is_found() -> None:
    head = meta(gap=200)
    ok = history(op("a", 0, 1, 1), fault("kill9", 1.5), op("a", 2, 3, 150), head=head)
    assert check(ok).ok
    bad = history(op("a", 0, 1, 1), op("a", 2, 3, 150), head=head)
    verdict = check(bad)
    assert verdict.violation_counts == {"gaps": 1}
    assert "148 values skipped between 1 and 150" in verdict.violations[0].message


def test_a_fault_counts_for_gaps_until_its_reach_after_its_end() -> None:
    # A failover group: the leader change after a store fault comes up to a lease later.
    head = meta(gap=200)
    head["extra"] = {"gap_faults": ["store-kill9"], "gap_fault_reach_ns": 5 * MS}
    records = (op("a", 10, 11, 1), op("a", 12, 13, 150))
    assert check(history(fault("store-kill9", 4, 6), *records, head=head)).ok  # 6 + 5 >= 10
    late = check(history(fault("store-kill9", 1, 2), *records, head=head))  # 2 + 5 < 10
    assert late.violation_counts == {"gaps": 1}


def test_nothing_handed_out_is_not_a_pass() -> None:
    h = history(op("a", 0, 1, status="fail"))
    verdict = check(h)
    assert not verdict.ok
    assert "nothing was checked" in render(verdict, h)


def test_keys_are_checked_apart_and_by_their_own_checks() -> None:
    head = meta({"tx": ["unique"], "*": []})
    h = history(op("a", 0, 1, 5, key="tx"), op("a", 2, 3, 5, key="events"), head=head)
    verdict = check(h)
    assert verdict.ok
    assert verdict.values_checked == 1


def test_unavailability_is_the_longest_time_without_a_success() -> None:
    h = history(
        op("a", 0, 1, 1),
        op("a", 1, 2, status="fail"),
        op("a", 2, 5001, status="info"),
        op("a", 5001, 5002, 2),
    )
    assert check(h).longest_unavailable_ns == 5001 * MS


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (json.dumps(op("a", 0, 1, 1)), "no meta record"),
        ("[1]", "a record must be a JSON object"),
        ('{"type": "meta", "version": 7}', "version 7"),
        ("not json", "line 1"),
    ],
)
def test_malformed_histories_are_refused_with_the_line(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_lines([line])


def test_bad_operation_is_refused() -> None:
    lines = [json.dumps(meta()), json.dumps(op("a", 2, 1, 1))]
    with pytest.raises(ValueError, match="line 2: complete_ns .* is before invoke_ns"):
        parse_lines(lines)
    lines = [json.dumps(meta()), json.dumps(op("a", 0, 1))]
    with pytest.raises(ValueError, match="line 2: an ok operation needs"):
        parse_lines(lines)


def test_writer_output_is_what_the_reader_takes(tmp_path: Any) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as writer:
        writer.meta("lease", {"modec": ["unique", "increasing"]}, started_ns=0)
        writer.op("mc0.1", "next_id", "modec", 1, 2, "ok", ids=[10, 11, 12, 20])
        writer.op("mc0.1", "next_id", "modec", 3, 4, "fail", error="LeaseLost: gone")
        writer.fault("pause", "mc0.1", 1, 5, "SIGSTOP")
    with path.open() as handle:
        h = parse_lines(handle)
    assert h.ops[0].ranges == ((10, 3), (20, 1))
    assert h.ops[1].error == "LeaseLost: gone"
    assert h.faults[0].end_ns == 5
    assert check(h).ok


def linearizable_history(seed: int, clients: int, ops_each: int) -> list[dict[str, Any]]:
    """A clean history: sequential clients, each op takes effect at a point inside its
    interval, values in the order of those points (with gaps only where an op timed out)."""
    rng = random.Random(seed)
    planned = []
    for c in range(clients):
        t = rng.uniform(0, 5)
        for _ in range(ops_each):
            length = rng.uniform(0.1, 5)
            point = t + rng.uniform(0, length)
            status = rng.choice(["ok"] * 8 + ["fail", "info"])
            planned.append((point, f"c{c}", t, t + length, rng.randint(1, 4), status))
            t += length + rng.uniform(0, 2)
    records = []
    value = 1
    for _, process, invoke, complete, count, status in sorted(planned):
        if status == "ok":
            records.append(op(process, invoke, complete, value, count=count))
        else:
            records.append(op(process, invoke, complete, count=count, status=status))
        if status != "fail":
            value += count  # an unknown outcome may have consumed its values
    return records


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 6), st.integers(1, 30))
def test_linearizable_histories_pass(seed: int, clients: int, ops_each: int) -> None:
    records = linearizable_history(seed, clients, ops_each)
    random.Random(seed).shuffle(records)  # file order across processes does not matter...
    records.sort(key=lambda r: (r["process"], r["invoke_ns"]))  # ...but within one it does
    h = history(*records)
    verdict = check(h)
    assert not verdict.violation_counts, render(verdict, h)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(2, 6), st.integers(2, 30), st.data())
def test_a_value_handed_out_twice_is_always_found(
    seed: int, clients: int, ops_each: int, data: st.DataObject
) -> None:
    records = linearizable_history(seed, clients, ops_each)
    ok = [r for r in records if r["status"] == "ok"]
    if len(ok) < 2:
        return
    source, target = data.draw(st.permutations(ok))[:2]
    target["value"] = source["value"]
    verdict = check(history(*records))
    assert verdict.violation_counts.get("unique", 0) >= 1
    assert verdict.duplicated_values >= 1


def test_values_on_an_operation_that_did_not_succeed_are_refused_not_ignored() -> None:
    # A fail or unknown operation that names values contradicts itself; ignoring the values
    # would pass the duplicate 5 below.
    for status in ("fail", "info"):
        record = op("b", 2, 3, status=status)
        record["value"] = 5
        lines = [json.dumps(meta()), json.dumps(op("a", 0, 1, 5)), json.dumps(record)]
        with pytest.raises(ValueError, match=f"line 3: a {status} operation carries no values"):
            parse_lines(lines)


def test_an_operation_with_two_outcomes_is_refused() -> None:
    # "value" and "ids" both: the reader took the first and dropped the second (the 5).
    record = op("b", 2, 3, 9, ids=[5])
    lines = [json.dumps(meta()), json.dumps(op("a", 0, 1, 5)), json.dumps(record)]
    with pytest.raises(ValueError, match="line 3: only one of 'value', 'ids', 'runs'"):
        parse_lines(lines)


def test_a_key_no_check_names_is_not_a_pass() -> None:
    # The meta record lists "default" only (no "*"): the duplicate in "tx" was never checked,
    # so the verdict cannot be a PASS (an explicit [] opts a key out).
    head = meta({"default": ALL})
    h = history(op("a", 0, 1, 1), op("a", 2, 3, 5, key="tx"), op("b", 4, 5, 5, key="tx"), head=head)
    verdict = check(h)
    assert not verdict.ok
    assert "no check named: tx (2 values)" in render(verdict, h)
