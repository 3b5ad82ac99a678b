"""The election's state machine, step by step: a fake store in memory and a manual clock.

No thread and no sleep: each test calls the elector's steps (``_stand_by``, ``_lead``) itself,
and a step's wait advances the manual clock instead. The store keeps the lease on the same
clock, from the moment it commits, as PostgreSQL and etcd do on theirs.
"""

from __future__ import annotations

import pytest

from chronoid.errors import LeadershipLost, LeaseStoreUnavailable
from chronoid.lease.base import margin_ms
from chronoid.sequencer import election
from chronoid.sequencer.election import Elector
from chronoid.sequencer.sequences import Sequences

TTL_S = 3.0


class Now:
    """The manual clock (s) the elector and the fake store share."""

    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


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

    def campaign(self, member: str, address: str, ttl: float) -> int | None:
        self._reach()
        if self.now() < self.expires_s:
            return None
        self.epoch += 1
        self.holder, self.expires_s = address, self.now() + ttl
        self._answer()
        return self.epoch

    def renew(self, token: int, ttl: float) -> None:
        self._reach()
        if not self.live(token):
            raise LeadershipLost(f"term {token} is over")
        self.expires_s = self.now() + ttl
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

    def close(self) -> None:
        pass


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> Now:
    clock = Now()
    monkeypatch.setattr(election, "_now", clock)
    return clock


def _elector(store: FakeStore, now: Now, address: str = "a:1") -> Elector:
    elector = Elector(
        store,
        member=address,
        address=address,
        make_sequences=lambda fenced: Sequences(fenced, block_min=16, block_max=16),
        ttl_s=TTL_S,
    )

    def sleep(seconds: float) -> None:  # a step's wait passes on the manual clock
        now.s += max(0.0, seconds)

    elector._sleep = sleep  # type: ignore[method-assign]
    return elector


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
    elector = _elector(store, now)
    elector._stand_by()
    term = elector._term
    assert term is not None
    elector._lead(term)  # sleeps until the renewal is due (ttl / 3), then renews
    assert now.s == pytest.approx(1000.0 + TTL_S / 3)
    assert term.deadline == pytest.approx(now.s + _trusted_s())


def test_a_renewal_whose_answer_is_lost_after_the_store_committed_extends_nothing(
    now: Now,
) -> None:
    store = FakeStore(now)
    elector = _elector(store, now)
    sent = now.s
    elector._stand_by()
    term = elector._term
    assert term is not None
    store.lose_replies = True
    elector._lead(term)  # the store extended the lease; the elector never heard it
    assert store.expires_s == pytest.approx(now.s + TTL_S)
    assert term.deadline == pytest.approx(sent + _trusted_s())
    now.s = sent + _trusted_s()
    assert elector.serving() is None


def test_a_refused_renewal_stops_issuing_at_once_and_does_not_resign(now: Now) -> None:
    store = FakeStore(now)
    old = _elector(store, now, "a:1")
    old._stand_by()
    term = old._term
    assert term is not None
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
    elector = _elector(store, now)
    elector._stand_by()
    term = elector._term
    assert term is not None
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
    old = _elector(store, now, "a:1")
    old._stand_by()
    term = old._term
    assert term is not None
    store.down = True
    old._step_down(term, "test", resign=True)
    assert old._unresigned == 1
    store.down = False
    now.s += TTL_S  # the lease expired by itself; a standby wins term 2
    new = _elector(store, now, "b:1")
    new._stand_by()
    assert new.term == 2
    old._resign_quietly(1)  # delivered at last, for a term that is over
    assert store.resigned == [] and store.live(2)
    assert _serving(new).take() > 0


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
