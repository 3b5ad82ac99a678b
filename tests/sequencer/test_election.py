"""The election's state machine, step by step: a fake store in memory and a manual clock.

No thread and no sleep: each test calls the elector's steps (``_stand_by``, ``_lead``) itself,
and a step's wait advances the manual clock instead. The store keeps the lease on the same
clock, from the moment it commits, as PostgreSQL and etcd do on theirs.
"""

from __future__ import annotations

import pytest

from chronoid.errors import (
    InvalidArgument,
    LeadershipLost,
    LeaseStoreUnavailable,
    StoreUnavailable,
)
from chronoid.lease.keeper import GIVE_BACK_MAX_NS, margin_ms
from chronoid.sequencer import election
from chronoid.sequencer.election import Elector, _Term, open_election
from chronoid.sequencer.sequences import DEFAULT_NAME, Sequences

TTL_S = 3.0
TTL_MS = 3_000


class Now:
    """The manual clock the elector (ns) and the fake store (s) share."""

    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s

    def ns(self) -> int:
        return round(self.s * 1e9)


class FakeStore:
    """One cluster's lease (epoch, expiry on the shared clock) and its fenced watermarks.

    ``down`` makes every call fail before it reaches the store; ``lose_replies`` makes calls
    reach the store and commit, then lose the answer (a timeout after the commit).
    """

    description = "fake store"

    def __init__(self, now: Now) -> None:
        self.now = now
        self.epoch = 0
        self.holder: str | None = None
        self.expires_s = 0.0
        self.marks: dict[str, int] = {}
        self.down = False
        self.lose_replies = False
        self.resigned: list[int] = []

    def _reach(self) -> None:
        if self.down:
            raise LeaseStoreUnavailable("fake store: unreachable")

    def _answer(self) -> None:
        if self.lose_replies:
            raise LeaseStoreUnavailable("fake store: no answer within 1 s")

    def live(self, token: int) -> bool:
        return token == self.epoch and self.now() < self.expires_s

    def campaign(self, member: str, address: str, ttl_ms: int) -> int | None:
        self._reach()
        if self.now() < self.expires_s:
            return None
        self.epoch += 1
        self.holder, self.expires_s = address, self.now() + ttl_ms / 1000
        self._answer()
        return self.epoch

    def renew(self, token: int, ttl_ms: int) -> None:
        self._reach()
        if not self.live(token):
            raise LeadershipLost(f"term {token} is over")
        self.expires_s = self.now() + ttl_ms / 1000
        self._answer()

    def resign(self, token: int) -> None:
        self._reach()
        if self.live(token):  # fenced: only the live term it names
            self.expires_s = self.now()
            self.resigned.append(token)
        self._answer()

    def leader(self) -> str | None:
        self._reach()
        return self.holder if self.now() < self.expires_s else None

    def load(self, token: int) -> dict[str, int]:
        self._reach()
        return dict(self.marks)

    def reserve(self, token: int, name: str, high: int) -> None:
        self._reach()
        if not self.live(token):
            raise LeadershipLost(f"fenced: term {token}")
        self.marks[name] = high
        self._answer()

    def holds_watermarks(self) -> bool:
        self._reach()
        return bool(self.marks)

    def wipe(self) -> None:
        """The store loses all its data (etcd restarted empty, rows deleted)."""
        self.epoch, self.holder, self.expires_s, self.marks = 0, None, 0.0, {}

    def close(self) -> None:
        pass


@pytest.fixture
def now() -> Now:
    return Now()


def _elector(store: FakeStore, now: Now, address: str = "a:1") -> Elector:
    elector = Elector(
        store,
        member=address,
        address=address,
        make_sequences=lambda fenced: Sequences(fenced, block_min=16, block_max=16),
        ttl_s=TTL_S,
        clock_ns=now.ns,
    )

    def sleep(seconds: float) -> None:  # a step's wait passes on the manual clock
        now.s += max(0.0, seconds)

    elector._sleep = sleep  # type: ignore[method-assign]
    return elector


def _leader(store: FakeStore, now: Now, address: str = "a:1") -> tuple[Elector, _Term]:
    """A member that campaigned and won: its elector and its term."""
    elector = _elector(store, now, address)
    elector._stand_by()
    term = elector._term
    assert term is not None
    return elector, term


def _trusted_s() -> float:
    return TTL_S - margin_ms(int(TTL_S * 1000)) / 1000


def _serving(elector: Elector) -> Sequences:
    sequences = elector.serving()
    assert sequences is not None
    return sequences


def test_a_won_term_serves_until_send_time_plus_ttl_minus_the_margin(now: Now) -> None:
    store = FakeStore(now)
    elector = _elector(store, now)
    sent = now.s
    elector._stand_by()
    assert elector.term == 1
    # Nothing renews (the elector thread is frozen, e.g. SIGSTOP): it stops on its own.
    now.s = sent + _trusted_s() - 0.001
    _serving(elector).take()
    now.s = sent + _trusted_s()
    assert elector.serving() is None
    assert now.s < store.expires_s  # before the store could hand the lease to anyone else


def test_a_renewal_extends_the_term_from_its_send_time(now: Now) -> None:
    store = FakeStore(now)
    elector, term = _leader(store, now)
    elector._lead(term)  # sleeps until the renewal is due (ttl / 3), then renews
    assert now.s == pytest.approx(1000.0 + TTL_S / 3)
    assert term.lease.deadline_ns / 1e9 == pytest.approx(now.s + _trusted_s())


def test_a_renewal_whose_answer_is_lost_after_the_store_committed_extends_nothing(
    now: Now,
) -> None:
    store = FakeStore(now)
    sent = now.s
    elector, term = _leader(store, now)
    store.lose_replies = True
    elector._lead(term)  # the store extended the lease; the elector never heard it
    assert store.expires_s == pytest.approx(now.s + TTL_S)
    assert term.lease.deadline_ns / 1e9 == pytest.approx(sent + _trusted_s())
    now.s = sent + _trusted_s()
    assert elector.serving() is None


def test_a_refused_renewal_stops_issuing_at_once_and_does_not_resign(now: Now) -> None:
    store = FakeStore(now)
    old, term = _leader(store, now, "a:1")
    # The old leader is frozen past the store's lease; a standby takes over meanwhile.
    now.s += TTL_S
    new = _elector(store, now, "b:1")
    new._stand_by()
    assert new.term == 2
    assert old.serving() is None  # its own deadline passed long ago
    old._lead(term)  # its late renewal meets the newer term
    assert old.term is None and "lease lost" in old.reason
    assert store.resigned == []
    assert _serving(new).take() > 0


def test_a_lost_resignation_is_kept_and_sent_again_once_the_store_answers(now: Now) -> None:
    store = FakeStore(now)
    elector, term = _leader(store, now)
    term.sequences.take()
    elector.fail(term.token, "watermark write failed: disk")
    assert elector.serving() is None  # at once, from the failing thread
    store.down = True
    elector._lead(term)  # steps down; the resignation cannot reach the store
    assert elector.term is None and elector._unresigned == 1
    elector._stand_by()  # still down: kept, no campaign reaches the store
    assert elector._unresigned == 1 and store.epoch == 1
    store.down = False
    elector._stand_by()
    assert store.resigned == [1] and elector._unresigned is None


def test_a_late_resignation_cannot_end_a_successors_term(now: Now) -> None:
    store = FakeStore(now)
    old, term = _leader(store, now, "a:1")
    store.down = True
    old._step_down(term, "test", resign=True)
    assert old._unresigned == 1
    store.down = False
    now.s += TTL_S  # the lease expired by itself; a standby wins term 2
    new = _elector(store, now, "b:1")
    new._stand_by()
    assert new.term == 2
    old._resign_quietly(1, term.lease)  # delivered at last, for a term that is over
    assert store.resigned == [] and store.live(2)
    assert _serving(new).take() > 0


class FlakyResignStore(FakeStore):
    """A store whose next ``unheard`` resignations fail before they reach it."""

    unheard = 0
    attempts = 0

    def resign(self, token: int) -> None:
        self.attempts += 1
        if self.unheard > 0:
            self.unheard -= 1
            raise LeaseStoreUnavailable("fake store: unreachable")
        super().resign(token)


def test_close_resigns_through_a_moment_without_the_store(now: Now) -> None:
    store = FlakyResignStore(now)
    elector, term = _leader(store, now)
    _serving(elector).take()
    store.unheard = 3  # the store is unreachable for three polls, inside the term
    elector.close()
    assert store.resigned == [1] and store.attempts == 4
    assert now.s < term.lease.deadline_ns / 1e9  # heard inside the term


def test_close_gives_up_resigning_at_the_terms_deadline_or_after_two_seconds(now: Now) -> None:
    # Never longer than the lease would have lasted anyway (then it expires by itself), and
    # never more than the give-back cap: a stop with the store down must not wait out a lease.
    store = FlakyResignStore(now)
    elector, term = _leader(store, now)
    store.unheard = 10**6
    start_s = now.s
    elector.close()
    end_s = min(term.lease.deadline_ns / 1e9, start_s + GIVE_BACK_MAX_NS / 1e9)
    assert store.resigned == [] and end_s <= now.s < end_s + 0.001
    assert store.attempts > 9  # sent again every standby poll (0.2 s) of the 2 s


def test_close_resigns_a_term_given_up_earlier_within_that_terms_lease(now: Now) -> None:
    store = FlakyResignStore(now)
    elector, term = _leader(store, now)
    store.down = True
    elector.fail(term.token, "watermark write failed: disk")
    elector._lead(term)  # steps down inside the lease; the resignation is kept
    assert elector._unresigned == 1
    store.down = False
    store.unheard = 2
    elector.close()
    assert store.resigned == [1] and now.s < term.lease.deadline_ns / 1e9


def test_values_stay_unique_across_a_handover(now: Now) -> None:
    store = FakeStore(now)
    old = _elector(store, now, "a:1")
    old._stand_by()
    seen = [_serving(old).take() for _ in range(40)]
    now.s += TTL_S  # old frozen past its lease
    new = _elector(store, now, "b:1")
    new._stand_by()
    seen += [_serving(new).take() for _ in range(40)]
    assert old.serving() is None
    assert len(set(seen)) == len(seen) and seen == sorted(seen)


# -- the store loses its data ----------------------------------------------------------------


def _lead_once(elector: Elector) -> None:
    term = elector._term
    assert term is not None
    elector._lead(term)


def test_a_standby_that_saw_a_watermark_refuses_a_store_that_lost_it(now: Now) -> None:
    store = FakeStore(now)
    old = _elector(store, now, "a:1")
    old._stand_by()
    before = [_serving(old).take() for _ in range(3)]
    new = _elector(store, now, "b:1")
    new._stand_by()  # a standby poll: sees the leader's watermark
    now.s += TTL_S  # the leader is frozen past its lease (SIGSTOP)...
    store.wipe()  # ...and the store restarts empty
    new._stand_by()
    assert new.term == 1 and new.serving() is None
    reply = new.refusal()
    assert reply.startswith(b"-TRYAGAIN") and b"store lost its data" in reply, reply
    info = new.info()
    assert info["ha_store_data_lost"] == 1 and new.data_lost is not None
    assert "store lost its data" in str(info["ha_reason"])
    assert store.marks == {}  # a refusing term writes nothing: it is no evidence to others
    _lead_once(new)  # it keeps the lease, so no member that knows less starts low
    assert new.term == 1 and store.live(1) and new.serving() is None
    assert old.serving() is None and max(before) >= 1


def test_a_first_leader_gone_before_any_request_leaves_a_store_its_successor_serves(
    now: Now,
) -> None:
    store = FakeStore(now)
    first = _elector(store, now, "a:1")
    first._stand_by()  # the term stores its starting watermark before it serves
    assert DEFAULT_NAME in store.marks
    second = _elector(store, now, "b:1")
    second._stand_by()
    now.s += TTL_S  # the first leader died before any GETSEQ
    second._stand_by()
    assert _serving(second).take() >= 1 and second.data_lost is None


def test_a_leader_gone_before_its_first_watermark_is_no_evidence(now: Now) -> None:
    store = FakeStore(now)
    assert store.campaign("a:1", "a:1", TTL_MS) == 1  # won, then killed before reserving
    second = _elector(store, now, "b:1")
    second._stand_by()  # saw a leader, but no watermark
    now.s += TTL_S
    second._stand_by()
    assert _serving(second).take() == 1  # a new cluster: starts at --initial


def _told_its_term_is_gone(store: FakeStore, now: Now) -> tuple[Elector, list[int], float]:
    """A leader that handed out values past its first block, then renewed, inside its lease,
    against a store that lost its data: the elector, its values and that term's deadline."""
    leader, term = _leader(store, now, "a:1")
    values = [_serving(leader).take() for _ in range(20)]
    store.wipe()
    leader._lead(term)
    assert leader.term is None and now.s < term.lease.deadline_ns / 1e9
    return leader, values, term.lease.deadline_ns / 1e9


def test_a_leader_told_its_term_is_gone_before_its_deadline_resumes_above_its_own(
    now: Now,
) -> None:
    leader, before, _ = _told_its_term_is_gone(FakeStore(now), now)
    leader._stand_by()  # no other term can have begun in the lost store: its own cover all
    assert _serving(leader).take() > max(before)


def test_a_leader_paused_past_its_deadline_refuses_a_store_that_lost_its_data(
    now: Now,
) -> None:
    # Its own watermarks are not enough: a successor served above them before the loss.
    store = FakeStore(now)
    old, term = _leader(store, now, "a:1")
    seen = [_serving(old).take() for _ in range(5)]
    now.s += TTL_S  # old frozen past its lease
    new = _elector(store, now, "b:1")
    new._stand_by()
    seen += [_serving(new).take() for _ in range(40)]  # above old's watermarks
    now.s += TTL_S  # new frozen too
    store.wipe()
    old._lead(term)  # resumed: its renewal comes after its deadline
    old._stand_by()
    assert old.term is not None and old.serving() is None and old.data_lost is not None
    assert max(seen) > max(old._reserved.values())


def test_a_watermark_below_the_members_own_is_lost_data_too(now: Now) -> None:
    store = FakeStore(now)
    old, term = _leader(store, now, "a:1")
    _serving(old).take()
    now.s += TTL_S
    store.marks[DEFAULT_NAME] = 3  # a restore of an old backup, under a live successor
    store.expires_s = 0.0
    old._lead(term)
    old._stand_by()
    assert old.serving() is None and b"below the" in old.refusal()


def test_a_refusing_term_lost_before_its_deadline_vouches_for_nothing(now: Now) -> None:
    store = FakeStore(now)
    old = _elector(store, now, "a:1")
    old._stand_by()
    new = _elector(store, now, "b:1")
    new._stand_by()
    now.s += TTL_S
    store.wipe()
    new._stand_by()
    assert new.data_lost is not None
    store.wipe()  # wiped again, while the refusing term is live
    _lead_once(new)
    new._stand_by()
    assert new.serving() is None and new.data_lost is not None


def test_a_leader_whose_watermark_write_is_refused_in_its_lease_resumes_above_its_own(
    now: Now,
) -> None:
    # Under load the loss shows first as a refused reservation, not a refused renewal.
    store = FakeStore(now)
    leader, term = _leader(store, now, "a:1")
    before = [_serving(leader).take() for _ in range(8)]
    store.wipe()
    with pytest.raises(StoreUnavailable, match="fenced"):
        for _ in range(40):  # reaches the next reservation
            before.append(_serving(leader).take())
    leader._lead(term)  # steps down, resigns, cools off
    leader._stand_by()
    leader._stand_by()
    assert _serving(leader).take() > max(before)


def test_a_leader_told_its_term_is_gone_vouches_only_for_its_very_next_campaign(
    now: Now,
) -> None:
    # Between a failed campaign and the next one, another member may have won and served
    # above this member's watermarks, and the store may have lost them again.
    store = FakeStore(now)
    leader, _, _ = _told_its_term_is_gone(store, now)
    store.down = True
    leader._stand_by()  # the campaign does not reach the store
    store.down = False
    leader._stand_by()
    assert leader.serving() is None and leader.data_lost is not None


def test_a_leader_told_its_term_is_gone_vouches_only_before_its_deadline(now: Now) -> None:
    leader, _, deadline = _told_its_term_is_gone(FakeStore(now), now)
    now.s = deadline  # frozen between the refusal and its campaign
    leader._stand_by()
    assert leader.serving() is None and leader.data_lost is not None


def test_a_store_wiped_twice_under_a_leader_inside_its_lease_repeats_nothing(now: Now) -> None:
    store = FakeStore(now)
    leader = _elector(store, now, "a:1")
    leader._stand_by()
    seen = [_serving(leader).take() for _ in range(20)]
    for _ in range(2):
        store.wipe()
        _lead_once(leader)
        leader._stand_by()
        seen += [_serving(leader).take() for _ in range(20)]
    assert len(set(seen)) == len(seen) and seen == sorted(seen)


# -- the lease schedule ------------------------------------------------------------------------


def _renewals(store: FakeStore, now: Now, round_trip_s: float = 0.0) -> list[float]:
    """Record the clock at every renewal the store is sent; each takes ``round_trip_s``."""
    sent: list[float] = []
    renew = store.renew

    def timed(token: int, ttl_ms: int) -> None:
        sent.append(now.s)
        now.s += round_trip_s
        renew(token, ttl_ms)

    store.renew = timed  # type: ignore[method-assign]
    return sent


def test_renewals_are_scheduled_from_the_send_time_of_the_last_one(now: Now) -> None:
    store = FakeStore(now)
    sent = _renewals(store, now, round_trip_s=0.3)
    elector, term = _leader(store, now)
    for _ in range(3):
        elector._lead(term)
    # Every TTL / 3 from the previous send, however long the replies took.
    assert sent == pytest.approx([1000.0 + TTL_S / 3 * i for i in (1, 2, 3)])
    assert term.lease.deadline_ns / 1e9 == pytest.approx(sent[-1] + _trusted_s())


def test_an_unreachable_store_is_retried_each_poll_until_the_deadline(now: Now) -> None:
    store = FakeStore(now)
    won = now.s
    elector, term = _leader(store, now)
    store.down = True
    sent = _renewals(store, now)
    serving_at_send = []
    while elector.term is not None:
        elector._lead(term)
        serving_at_send.append(elector.serving() is not None)
    deadline = won + _trusted_s()
    # The first renewal after TTL / 3, then one standby poll (0.2 s) after each failure.
    assert sent == pytest.approx([won + 1.0 + 0.2 * i for i in range(8)])
    assert sent[-2] < deadline <= sent[-1]
    assert serving_at_send == [True] * 7 + [False]  # it served right up to its deadline
    assert "lease can no longer be confirmed" in elector.reason
    assert elector._unresigned == 1  # the resignation could not reach the store either


def test_a_renewal_refused_inside_the_lease_ends_the_term_at_once(now: Now) -> None:
    store = FakeStore(now)
    elector, term = _leader(store, now)
    store.expires_s = 0.0  # the store ended the term (an operator, a lost lease row)
    elector._lead(term)
    assert now.s < term.lease.deadline_ns / 1e9  # its own deadline has not passed...
    assert elector.serving() is None and elector.term is None  # ...but it stopped issuing
    assert "lease lost" in elector.reason and store.resigned == []
    before = now.s
    elector._stand_by()  # a lost lease is no failure of its own: it campaigns at once
    assert elector.term == 2 and now.s == before


def test_a_member_that_failed_itself_cools_off_before_campaigning_again(now: Now) -> None:
    store = FakeStore(now)
    elector, term = _leader(store, now)
    elector.fail(term.token, "watermark write failed: disk")
    elector._lead(term)  # steps down and resigns, so a healthy standby can take over
    assert elector.term is None and store.resigned == [1]
    stepped_down = now.s
    elector._stand_by()  # cooling off: no campaign reaches the store
    assert store.epoch == 1
    assert now.s == pytest.approx(stepped_down + election.COOL_OFF_POLLS * 0.2)
    elector._stand_by()  # then it campaigns again
    assert elector.term == 2 and _serving(elector).take() > 0


def test_the_election_clock_must_be_callable(now: Now) -> None:
    with pytest.raises(InvalidArgument, match="clock_ns must be callable"):
        Elector(
            FakeStore(now),
            member="a:1",
            address="a:1",
            make_sequences=lambda fenced: Sequences(fenced),
            clock_ns=5,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("ttl_s", [float("inf"), 1e300, 86_400.5])
def test_a_lease_ttl_beyond_a_day_is_refused_by_name(now: Now, ttl_s: float) -> None:
    # `chronoid serve --ha ... --lease-ttl inf` printed a traceback (OverflowError) instead
    # of a one-line error; 1e300 won a term and crashed on SIGTERM.
    with pytest.raises(InvalidArgument, match="lease ttl"):
        Elector(
            FakeStore(now),
            member="a:1",
            address="a:1",
            make_sequences=lambda fenced: Sequences(fenced),
            ttl_s=ttl_s,
        )
    with pytest.raises(InvalidArgument, match="lease ttl"):
        open_election(
            "postgresql://127.0.0.1:1/none",
            address="a:1",
            make_sequences=lambda fenced: Sequences(fenced),
            ttl_s=ttl_s,
        )
