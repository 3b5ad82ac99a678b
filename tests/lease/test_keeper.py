"""The lease keeper's rules (docs/leases.md) on a manual clock: no store, no thread."""

from __future__ import annotations

import pytest

from chronoid.clock import ManualClock, boottime_ns
from chronoid.errors import InvalidArgument, LeaseLost, LeaseStoreUnavailable
from chronoid.lease.keeper import GIVE_BACK_MAX_NS, LeaseKeeper, margin_ms

MS = 1_000_000
TTL_MS = 3_000


def _keeper(clock: ManualClock, **kwargs: int) -> LeaseKeeper:
    return LeaseKeeper(TTL_MS, clock_ns=clock.now_ns, **kwargs)


def test_nothing_is_trusted_before_a_confirmation() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    assert not keeper.live() and keeper.deadline_ns == 0 and keeper.due_in_ns() == 0


def test_the_deadline_counts_from_the_send_time_not_the_reply() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    sent = clock.now_ns()
    clock.advance_ns(400 * MS)  # the round trip
    keeper.confirmed(sent)
    trusted = (TTL_MS - margin_ms(TTL_MS)) * MS
    assert keeper.deadline_ns == sent + trusted
    clock.advance_ns(trusted - 400 * MS - 1)
    assert keeper.live()
    clock.advance_ns(1)
    assert not keeper.live() and clock.now_ns() == keeper.deadline_ns


def test_renewals_are_due_one_period_after_the_last_send() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    assert keeper.due_in_ns() == TTL_MS // 3 * MS
    clock.advance_ns(keeper.due_in_ns())
    sent = clock.now_ns()
    clock.advance_ns(50 * MS)
    keeper.confirmed(sent)
    assert keeper.renew_at_ns == sent + TTL_MS // 3 * MS
    assert keeper.due_in_ns() == TTL_MS // 3 * MS - 50 * MS


def test_a_lost_reply_never_lengthens_the_lease() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    deadline = keeper.deadline_ns
    clock.advance_ns(keeper.due_in_ns())
    assert keeper.failed()  # the store may have renewed; the keeper never heard it
    assert keeper.deadline_ns == deadline


def test_an_older_send_confirmed_late_never_shortens_the_lease() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    early = clock.now_ns()
    clock.advance_ns(100 * MS)
    keeper.confirmed(clock.now_ns())
    deadline = keeper.deadline_ns
    keeper.confirmed(early)
    assert keeper.deadline_ns == deadline


def test_a_failure_is_retried_soon_and_the_lease_holds_until_its_deadline() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    clock.advance_ns(keeper.due_in_ns())
    retries = 0
    while keeper.failed():
        assert keeper.due_in_ns() == TTL_MS // 3 // 4 * MS  # a quarter period, not a whole one
        clock.advance_ns(keeper.due_in_ns())
        retries += 1
    assert not keeper.live() and clock.now_ns() >= keeper.deadline_ns
    # 1000 ms renewals in a 2250 ms lease: the failed renewal at 1000 ms, then every 250 ms.
    assert retries == 5


def test_the_retry_interval_can_be_set() -> None:
    clock = ManualClock()
    keeper = _keeper(clock, retry_ms=200)
    keeper.confirmed(clock.now_ns())
    keeper.failed()
    assert keeper.due_in_ns() == 200 * MS


def test_end_trusts_nothing_and_is_due_at_once() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    keeper.end()
    assert not keeper.live() and keeper.deadline_ns == 0 and keeper.due_in_ns() == 0
    assert not keeper.failed()
    sent = clock.now_ns()
    keeper.confirmed(sent)  # a new lease: trusted from its own send
    assert keeper.deadline_ns == sent + (TTL_MS - margin_ms(TTL_MS)) * MS


def test_the_default_clock_is_boottime() -> None:
    keeper = LeaseKeeper(TTL_MS)
    sent = boottime_ns()
    keeper.confirmed(sent)
    assert keeper.live() and keeper.deadline_ns == sent + (TTL_MS - margin_ms(TTL_MS)) * MS


def test_custom_timings() -> None:
    clock = ManualClock()
    keeper = LeaseKeeper(1000, renew_ms=100, skew_margin_ms=0, clock_ns=clock.now_ns)
    keeper.confirmed(clock.now_ns())
    assert keeper.deadline_ns == clock.now_ns() + 1000 * MS and keeper.due_in_ns() == 100 * MS


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ttl_ms": 99}, "ttl_ms"),
        ({"ttl_ms": 1000.0}, "ttl_ms"),
        ({"ttl_ms": True}, "ttl_ms"),
        ({"skew_margin_ms": -1}, "skew_margin_ms"),
        ({"skew_margin_ms": 3000}, "skew_margin_ms"),
        ({"skew_margin_ms": 0.5}, "skew_margin_ms"),
        ({"renew_ms": 0}, "renew_ms"),
        ({"renew_ms": 2250}, "renew_ms"),  # not below ttl - margin
        ({"renew_ms": 100.0}, "renew_ms"),
        ({"retry_ms": 0}, "retry_ms"),
        ({"retry_ms": 1001}, "retry_ms"),  # longer than a renewal period
        ({"clock_ns": 5}, "clock_ns"),
    ],
)
def test_bad_timings_are_refused_naming_the_parameter(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"ttl_ms": TTL_MS, **kwargs}
    with pytest.raises(InvalidArgument, match=f"^{name} must be"):
        LeaseKeeper(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # an InvalidArgument is a ValueError too
        LeaseKeeper(**args)  # type: ignore[arg-type]


# -- attacks (branch attack-keeper) ----------------------------------------------------------


def test_a_confirmation_sent_before_the_end_does_not_bring_the_lease_back() -> None:
    # A renewal in flight when the store refused (or the lease was given back): its late
    # success says the store renewed a lease that is over; nothing may be trusted from it.
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    late_sent = clock.now_ns()
    clock.advance_ns(100 * MS)
    keeper.end()
    keeper.confirmed(late_sent)
    assert not keeper.live() and keeper.due_in_ns() == 0
    sent = clock.now_ns()  # a request sent at or after the end counts
    keeper.confirmed(sent)
    assert keeper.deadline_ns == sent + (TTL_MS - margin_ms(TTL_MS)) * MS


def test_a_lease_clock_with_negative_readings_is_refused() -> None:
    # time.monotonic_ns's reference point is undefined; a clock reading below 0 would be
    # "inside" the ended (0) deadline: live() after end(), and Mode C issuing without a lease.
    clock = ManualClock(start_ns=-10_000 * MS)
    with pytest.raises(InvalidArgument, match="clock_ns"):
        _keeper(clock)


class _Unheard:
    """A release or resignation that the store does not hear the first ``unheard`` times."""

    def __init__(self, unheard: int, error: Exception | None = None) -> None:
        self.unheard = unheard
        self.sent = 0
        self.error = error or LeaseStoreUnavailable("store: unreachable")

    def __call__(self) -> None:
        self.sent += 1
        if self.sent <= self.unheard:
            raise self.error


def test_give_back_is_sent_again_until_the_store_hears_it() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    start = clock.now_ns()
    send = _Unheard(3)
    keeper.give_back(send, lambda s: clock.advance_ns(round(s * 1e9)))
    assert send.sent == 4 and clock.now_ns() - start == 3 * keeper.retry_ns


def test_give_back_stops_at_the_deadline_with_the_last_error() -> None:
    clock = ManualClock()
    keeper = LeaseKeeper(2_000, clock_ns=clock.now_ns)  # trusted 1.5 s, under the 2 s cap
    keeper.confirmed(clock.now_ns())
    trusted_ns = keeper.deadline_ns - clock.now_ns()
    assert trusted_ns < GIVE_BACK_MAX_NS
    send = _Unheard(10**6)
    with pytest.raises(LeaseStoreUnavailable):
        keeper.give_back(send, lambda s: clock.advance_ns(round(s * 1e9)))
    assert clock.now_ns() == keeper.deadline_ns  # the last wait ends at the deadline exactly
    assert send.sent == -(-trusted_ns // keeper.retry_ns) + 1


def test_give_back_of_a_long_lease_stops_after_two_seconds() -> None:
    # A stop with the store down must not wait out a long lease (systemd's stop timeout, a
    # worker restart): the lease then expires by itself.
    clock = ManualClock()
    keeper = LeaseKeeper(86_400_000, clock_ns=clock.now_ns)
    keeper.confirmed(clock.now_ns())
    start = clock.now_ns()
    with pytest.raises(LeaseStoreUnavailable):
        keeper.give_back(_Unheard(10**6), lambda s: clock.advance_ns(round(s * 1e9)))
    assert clock.now_ns() - start == GIVE_BACK_MAX_NS


def test_give_back_waits_no_longer_than_the_lease_on_a_clock_that_stands_still() -> None:
    # An injected lease clock that never moves: the waits asked still add up to what the
    # lease had left, and never to more than the cap.
    for ttl_ms in (2_000, TTL_MS):
        clock = ManualClock()
        keeper = LeaseKeeper(ttl_ms, clock_ns=clock.now_ns)
        keeper.confirmed(clock.now_ns())
        most_ns = min(keeper.deadline_ns - clock.now_ns(), GIVE_BACK_MAX_NS)
        waits: list[float] = []
        with pytest.raises(LeaseStoreUnavailable):
            keeper.give_back(_Unheard(10**6), waits.append)
        assert sum(waits) == pytest.approx(most_ns / 1e9)


def test_give_back_after_the_deadline_is_sent_once_and_other_errors_are_not_retried() -> None:
    clock = ManualClock()
    keeper = _keeper(clock)
    keeper.confirmed(clock.now_ns())
    clock.advance_ns(keeper.deadline_ns)
    send = _Unheard(1)
    with pytest.raises(LeaseStoreUnavailable):
        keeper.give_back(send, lambda s: pytest.fail("waited after the deadline"))
    assert send.sent == 1
    keeper.confirmed(clock.now_ns())
    refused = _Unheard(1, LeaseLost("the store refused"))
    with pytest.raises(LeaseLost):
        keeper.give_back(refused, lambda s: pytest.fail("retried a refusal"))
    assert refused.sent == 1
