"""Mode B's state file attacked once more (the durable branch's adversary): each test here
failed on the durable branch before its fix."""

from __future__ import annotations

from pathlib import Path

from chronoid.clock import ManualClock
from chronoid.errors import StateFileError, StateInUse
from chronoid.modes.instance import InstanceGenerator


def test_a_deleted_lock_file_never_lets_two_generators_share_a_state_file(
    tmp_path: Path,
) -> None:
    """``rm state.lock`` under a live generator, then a second one on the same file: the
    second locks a new inode and resumes above the first one's mark, and the first, which
    never looked at its lock again, went on into the same counters and ticks (thousands of
    IDs issued twice). The first must stop at its mark (or lock the path again when nobody
    else did)."""
    state = tmp_path / "b.state"
    clock = ManualClock()
    a = InstanceGenerator("chrono64ms", 7, clock=clock, state_file=state, reserve=1000)
    issued = a.next_ids(10)
    Path(f"{state}.lock").unlink()
    b = InstanceGenerator("chrono64ms", clock=clock, state_file=state, reserve=1000)
    refusals = 0
    for _ in range(20):
        for gen in (a, b):
            try:
                issued += gen.next_ids(500)
            except (StateFileError, StateInUse):
                refusals += 1
        clock.advance_ns(1_000_000_000)
    assert len(issued) == len(set(issued)), f"{len(issued) - len(set(issued))} IDs issued twice"
    assert refusals > 0  # the first generator stopped
    b.close()
    a.close()


def test_a_deleted_lock_file_is_taken_again_when_nobody_else_did(tmp_path: Path) -> None:
    state = tmp_path / "b.state"
    clock = ManualClock()
    a = InstanceGenerator("chrono64ms", 7, clock=clock, state_file=state, reserve=100)
    issued = a.next_ids(10)
    Path(f"{state}.lock").unlink()
    issued += a.next_ids(1000)  # several writes: the lock is taken again, issuing goes on
    assert len(set(issued)) == 1010
    try:
        InstanceGenerator("chrono64ms", clock=clock, state_file=state)
    except StateInUse:
        pass
    else:
        raise AssertionError("a second generator opened a state file the first still holds")
    a.close()
