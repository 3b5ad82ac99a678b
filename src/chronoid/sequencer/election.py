"""Failover: one leader per cluster, chosen by a lease in an existing store, fenced writes.

Several ``chronoid serve --ha URL`` members point at one PostgreSQL database or one etcd
cluster. The store decides who leads, we add no consensus of our own:

* **Lease.** A member becomes leader by taking the cluster's lease row/key when it is free or
  expired (store clock), which also gives it a *fencing token* (the PostgreSQL epoch, the etcd
  key's create revision) larger than every earlier term's. It renews every ``ttl / 3``.
* **Fencing.** Every watermark write is a compare-and-set conditioned on that token (and, in
  PostgreSQL, on the lease being live), so a deposed leader's write fails instead of moving a
  watermark its successor already relies on.
* **Serving only inside the lease.** The leader answers ``GETSEQ`` only while its local lease
  deadline has not passed, kept by the rules every lease follows (``docs/leases.md``,
  :class:`~chronoid.lease.keeper.LeaseKeeper`): it ends before the store's lease, so the old
  leader has stopped before any successor can start, whatever paused it (SIGSTOP, a VM pause,
  a long GC).
* **Stepping down.** A renewal the store refuses, a lease that can no longer be confirmed
  (store unreachable past the deadline) or a watermark write that fails or exceeds the
  store's write timeout (a sick disk or store, tikv/pd#10671) ends the term: the member stops
  issuing at once, resigns if it can, and stands by.

Values stay unique across terms without any extra step: a new leader starts at the stored
watermark, which is above everything the old one could hand out. Every term stores its
starting watermark of the default sequence before it serves, so a store that held any term
holds that watermark.

A crash leaves a gap below two reservation blocks; a clean stop (SIGTERM) stores the exact
next value and resigns, so the standby takes over at once and without a gap.

* **Store data loss.** A member with evidence that the store held state (a watermark it
  stored or saw) that wins a term in which the store holds no default watermark, or a lower
  one than its own, refuses to issue (:class:`~chronoid.errors.StoreDataLost`) and keeps the
  lease until an operator restarts the members with ``--initial``; only a leader told its term
  is gone *before its own deadline* resumes above its own watermarks. The reasoning is in
  ``docs/sequencer.md`` ("A store that lost its data").

Standbys answer ``GETSEQ``/``CURRENT`` with Redis Cluster's redirect ``-MOVED 0 host:port``
naming the leader (``redis-cli -c`` and :class:`~chronoid.sequencer.client.SequencerClient`
follow it) or ``-TRYAGAIN ...`` saying why no leader is known.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chronoid import clock as clocks
from chronoid.endpoints import check_address
from chronoid.errors import InvalidArgument, LeadershipLost, StoreDataLost, StoreUnavailable
from chronoid.lease.base import Coordinator
from chronoid.lease.keeper import LeaseKeeper
from chronoid.lease.url import open_coordinator
from chronoid.sequencer.logs import event
from chronoid.sequencer.protocol import encode_error
from chronoid.sequencer.sequences import DEFAULT_NAME, Sequences
from chronoid.sequencer.store import WatermarkStore

__all__ = [
    "DEFAULT_TTL",
    "MAX_TTL",
    "Coordinator",
    "Elector",
    "check_address",
    "check_lease_ttl",
    "open_coordinator",
    "open_election",
]

log = logging.getLogger("chronoid.sequencer")

DEFAULT_TTL = 3.0
"""Lease time to live (s): failover after a crash takes at most about this long."""
MAX_TTL = 86_400.0
"""The longest lease TTL (s): a day. Failover after a crash takes about one TTL, and the
elector's waits (thread joins, timeouts) must stay within what the platform can sleep."""
RENEWALS = 3
"""Renewals per TTL (the leader renews every ``ttl / RENEWALS`` seconds)."""
STANDBY_POLL = 0.2
"""How often (s, at most ``ttl / 4``) a standby asks the store whether the lease is free."""
COOL_OFF_POLLS = 2
"""After stepping down for a failure of its own, a member waits this many standby polls
before campaigning again, so a healthy standby gets the lease first."""


@dataclass(slots=True)
class _Term:
    token: int
    lease: LeaseKeeper  # the term's local deadline and renewal schedule
    sequences: Sequences | None  # None: the store lost its data, the term refuses to issue
    failed: str | None = None  # set by any thread when a watermark write failed
    data_lost: str | None = None  # why the term refuses (sequences is None)


class _FencedStore:
    """The :class:`WatermarkStore` of one term: every write carries the term's token."""

    def __init__(
        self, coordinator: Coordinator, token: int, elector: Elector, *, vouched: bool
    ) -> None:
        self._coordinator = coordinator
        self._token = token
        self._elector = elector
        self._vouched = vouched

    def load(self) -> dict[str, int]:
        stored = self._coordinator.load(self._token)
        return self._elector.starting_marks(stored, self._token, vouched=self._vouched)

    def reserve(self, name: str, high: int) -> None:
        try:
            self._coordinator.reserve(self._token, name, high)
        except StoreDataLost as exc:
            self._elector.lost(self._token, str(exc))
            raise
        except Exception as exc:
            refused = isinstance(exc, LeadershipLost)
            reason = f"watermark write of {name!r} failed: {exc}"
            self._elector.fail(self._token, reason, refused=refused)
            raise
        self._elector.reserved(name, high)


class Elector:
    """Campaigns, renews and steps down in its own thread; the event loop asks
    :meth:`serving` before every ``GETSEQ``/``CURRENT``.

    ``make_sequences`` builds the term's :class:`Sequences` over the fenced store (it loads
    the watermarks and reserves a first block, so it runs only after the lease is won).
    ``clock_ns`` is the lease clock (ns, default :func:`chronoid.clock.boottime_ns`,
    ``CLOCK_BOOTTIME``, which keeps counting while the machine is suspended, so a resumed
    leader sees its lease run out); tests pass a manual one.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        member: str,
        address: str,
        make_sequences: Callable[[WatermarkStore], Sequences],
        ttl_s: float = DEFAULT_TTL,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        check_lease_ttl(ttl_s)
        if not member:
            raise InvalidArgument("member name must be non-empty")
        self.coordinator = coordinator
        self.member = member
        self.address = check_address(address)
        self.ttl_s = float(ttl_s)
        self._poll_s = min(STANDBY_POLL, self.ttl_s / 4)
        # Read at construction (not bound as a default argument), so the clock module stays
        # the one home of the lease clock.
        self._now: Callable[[], int] = clock_ns if clock_ns is not None else clocks.boottime_ns
        self._ttl_ms = ttl_ms = round(self.ttl_s * 1000)  # the lease layer's unit
        # Each term keeps its lease by the rules every lease follows (chronoid.lease.keeper):
        # renewed every ttl / RENEWALS, retried one standby poll after a failure.
        self._lease_keeper = functools.partial(
            LeaseKeeper,
            ttl_ms,
            renew_ms=ttl_ms // RENEWALS,
            retry_ms=round(self._poll_s * 1000),
            clock_ns=self._now,
        )
        self._lease_keeper()  # validates the timings and the clock now, not at the first term
        self.leader_address: str | None = None
        """The leader's advertised address as last seen (this member's own while leading)."""
        self.reason = "not started"
        """Why this member is not serving (for refusals and INFO)."""
        self.terms_won = 0
        self.step_downs = 0
        self._make_sequences = make_sequences
        # The highest watermark per sequence this member stored or started a term from, in
        # any of its terms: a store that lost its data (etcd restarted empty, a table
        # dropped) cannot vouch for what was handed out, but this member knows what it
        # handed out itself, and that earlier terms handed out nothing above what it loaded.
        self._reserved: dict[str, int] = {}
        self._reserved_lock = threading.Lock()
        # Evidence that this cluster's store held state: a watermark this member stored or
        # saw while standing by (a refusing term writes none, so it is no evidence).
        self._store_held_state = False
        # The deadline of a term the store said was over before that deadline (a renewal or
        # a watermark write refused): this member's own watermarks cover every value handed
        # out. Good for the next campaign only, and only if sent before that deadline.
        self._vouched_until_ns = 0
        self._term: _Term | None = None
        self._unresigned: int | None = None  # a term to resign once the store answers
        self._unresigned_lease: LeaseKeeper | None = None  # that term's lease
        self._cool_off_until_ns = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chronoid-elector", daemon=True)

    # -- read by the event loop ------------------------------------------------------------

    def serving(self) -> Sequences | None:
        """The term's sequences while this member may issue, else None."""
        term = self._term
        if term is None or term.failed is not None or not term.lease.live():
            return None
        if term.data_lost is not None:
            return None  # the term refuses (the store lost its data)
        return term.sequences

    @property
    def term(self) -> int | None:
        """The fencing token of the term this member holds (None while standing by); it may
        hold a term whose lease it can no longer confirm: :meth:`serving` decides issuing."""
        term = self._term
        return term.token if term is not None else None

    @property
    def data_lost(self) -> str | None:
        """Why the term this member holds refuses to issue (the store lost its data), or None."""
        term = self._term
        return term.data_lost if term is not None else None

    def refusal(self) -> bytes:
        """The error reply a member that may not issue sends instead."""
        leader = self.leader_address
        if leader is not None and leader != self.address:
            return encode_error(f"MOVED 0 {leader}")
        term = self._term
        if term is not None and term.data_lost is not None:
            reason = term.data_lost
        elif term is not None and term.failed is None:
            reason = "this member's lease is not confirmed by the store"
        else:
            reason = self.reason
        return encode_error(f"TRYAGAIN no sequencer leader available: {reason}")

    def info(self) -> dict[str, object]:
        """INFO lines about leadership."""
        term = self._term
        return {
            "role": "leader" if self.serving() is not None else "standby",
            "ha_store": self.coordinator.description,
            "ha_member": self.member,
            "ha_term": term.token if term is not None else 0,
            "ha_leader": self.leader_address or "",
            "ha_lease_ttl": self.ttl_s,
            "ha_terms_won": self.terms_won,
            "ha_step_downs": self.step_downs,
            "ha_store_data_lost": int(self.data_lost is not None),
            "ha_reason": "" if self.serving() is not None else self.reason,
        }

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start campaigning in the background."""
        self.reason = "campaigning"
        self._thread.start()

    def close(self) -> None:
        """Stop campaigning; a leader stores its exact next values, then resigns.

        A resignation the store does not hear (it is unreachable for a moment) is sent again
        until it does, or until the term would have ended anyway: close() never waits
        longer than the lease lasts, nor more than 2 s (then it expires by itself).
        """
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            # Bounded: a store call stuck past its own timeouts (a commit waiting on a stalled
            # disk) must not keep the process from exiting; the lease then expires by itself.
            self._thread.join(timeout=2 * self.ttl_s)
            if self._thread.is_alive():
                log.warning(
                    "the elector is stuck in a store call; closing without it",
                    extra=event("elector_stuck"),
                )
        self._wake.clear()  # set to stop the thread: the retries below wait for real
        term, self._term = self._term, None
        if self._unresigned is not None and self._unresigned_lease is not None:
            self._resign_quietly(self._unresigned, self._unresigned_lease, closing=True)
        if term is not None:
            if term.sequences is not None and term.data_lost is not None:
                term.sequences.abandon()  # nothing to store: the store lost its data
            elif term.sequences is not None:
                term.sequences.close()
            self._resign_quietly(term.token, term.lease, closing=True)
        self.coordinator.close()

    def fail(self, token: int, reason: str, *, refused: bool = False) -> None:
        """A watermark write of term ``token`` failed (``refused``: the store said the term
        is over): stop issuing now (any thread)."""
        term = self._term
        if term is not None and term.token == token and term.failed is None:
            if refused:
                self._refused_in_lease(term)
            term.failed = reason
            self._wake.set()

    def lost(self, token: int, reason: str) -> None:
        """A watermark write found the store lost data under term ``token``: the term stops
        issuing now and keeps the lease, refusing, as one that won an emptied store does
        (any thread)."""
        term = self._term
        if term is not None and term.token == token and term.data_lost is None:
            term.data_lost = self.reason = reason
            log.error("term %d: %s", token, reason, extra=event("store_data_lost", term=token))
            self._wake.set()

    def _refused_in_lease(self, term: _Term) -> None:
        """The store said term ``term`` is over: if that came before the term's deadline, the
        lease was live in the store until after it, so no successor's term can have begun in
        a store that lost it since, and this member's own watermarks vouch for its next term."""
        if term.sequences is not None and term.lease.live():
            self._vouched_until_ns = term.lease.deadline_ns

    def reserved(self, name: str, high: int) -> None:
        """Watermark ``high`` of ``name`` is stored (any thread)."""
        with self._reserved_lock:
            self._store_held_state = True
            if high > self._reserved.get(name, 0):
                self._reserved[name] = high

    def starting_marks(
        self, stored: dict[str, int], token: int, *, vouched: bool
    ) -> dict[str, int]:
        """The watermarks term ``token`` starts from, given the ``stored`` ones.

        The store's, unless they show it lost data: no default watermark although this
        member has evidence the store held state, or one below what this member stored in an
        earlier term. Then, with ``vouched`` (this member saw its own term end before its
        lease deadline), its own watermarks; else :class:`StoreDataLost`.
        """
        with self._reserved_lock:
            reserved = dict(self._reserved)
            held_state = self._store_held_state
        regressed = [name for name, high in reserved.items() if stored.get(name, 0) < high]
        if DEFAULT_NAME in stored and not regressed:
            return self._started_from(stored)
        if not regressed and not held_state:
            return self._started_from(stored)  # a new cluster: no member ever stored anything
        if not vouched:
            if DEFAULT_NAME not in stored:
                what = f"it holds no watermark of {DEFAULT_NAME!r}, where this member saw one"
            else:
                name = regressed[0]
                what = (
                    f"watermark of {name!r} is {stored.get(name, 'none')}, below the "
                    f"{reserved[name]} this member stored"
                )
            own = reserved.get(DEFAULT_NAME)
            known = f" (this member stored up to {own})" if own is not None else ""
            raise StoreDataLost(
                f"the store lost its data: {what}; which values were handed out is unknown"
                f"{known}, so this member issues nothing until every member is restarted "
                "with --initial above the last value handed out"
            )
        marks = dict(stored)
        for name, high in reserved.items():
            if marks.get(name, 0) < high:
                log.error(
                    "term %d: the store holds watermark %s for %r, below %d stored by this "
                    "member in an earlier term: the store lost data; resuming above %d",
                    token,
                    marks.get(name, "none"),
                    name,
                    high,
                    high,
                    extra=event("watermark_regressed", sequence=name, term=token),
                )
                marks[name] = high
        return self._started_from(marks)

    def _started_from(self, marks: dict[str, int]) -> dict[str, int]:
        """``marks``, remembered as this member's own: a sequence loaded but never asked
        for in this term had its values handed out by earlier terms, all below its mark, so
        a later loss of the store must not restart it (a vouched term resumes above them)."""
        for name, high in marks.items():
            self.reserved(name, high)
        return dict(marks)

    # -- the elector thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._term is None:
                    self._stand_by()
                else:
                    self._lead(self._term)
            except Exception:  # never let the thread die: a dead elector would serve on
                log.exception(
                    "unexpected error in the elector; retrying", extra=event("elector_error")
                )
                term = self._term
                if term is not None:
                    self._step_down(term, "unexpected elector error", resign=True)
                self._sleep(self._poll_s)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _stand_by(self) -> None:
        if self._unresigned is not None and self._unresigned_lease is not None:
            self._resign_quietly(self._unresigned, self._unresigned_lease)
        cooling_ns = self._cool_off_until_ns - self._now()
        if cooling_ns > 0:
            self._sleep(cooling_ns / 1e9)
            return
        sent = self._now()
        vouched, self._vouched_until_ns = sent < self._vouched_until_ns, 0
        try:
            token = self.coordinator.campaign(self.member, self.address, self._ttl_ms)
            if token is None:
                self.leader_address = self.coordinator.leader()
                self.reason = f"standing by; leader {self.leader_address or 'unknown'}"
                if not self._store_held_state and self.coordinator.holds_watermarks():
                    self._store_held_state = True  # read until seen once, then never again
                self._sleep(self._poll_s)
                return
        except StoreUnavailable as exc:
            self.leader_address = None
            self.reason = f"store unavailable: {exc}"
            log.warning("cannot campaign: %s", exc, extra=event("campaign_failed"))
            self._sleep(self._poll_s)
            return
        # The deadline and the renewal schedule count from the campaign's send time: loading
        # and reserving take part of the lease already.
        lease = self._lease_keeper()
        lease.confirmed(sent)
        fenced = _FencedStore(self.coordinator, token, self, vouched=vouched)
        try:
            sequences: Sequences | None = self._make_sequences(fenced)
            data_lost = None
        except StoreDataLost as exc:
            # Keep the lease and refuse: resigning would hand the empty store to a member
            # that may know less (a restarted one starts at --initial).
            sequences, data_lost = None, str(exc)
            self.reason = data_lost  # for INFO's ha_reason and /readyz
            log.error(
                "term %d: %s",
                token,
                exc,
                extra=event("store_data_lost", term=token),
            )
        except Exception as exc:  # whatever it is, this term cannot serve: free the lease
            self.reason = f"won term {token} but could not load/reserve: {exc}"
            log.error("%s; resigning", self.reason, extra=event("term_unusable", term=token))
            self._resign_quietly(token, lease)
            self._cool_off()
            return
        self.terms_won += 1
        self.leader_address = self.address
        self._term = _Term(token, lease, sequences, data_lost=data_lost)
        if sequences is None:
            return
        log.info(
            "leader of %s: term %d, lease %.1f s, next value %d",
            self.coordinator.description,
            token,
            self.ttl_s,
            sequences.current(),
            extra=event("leader_elected", term=token),
        )

    def _lead(self, term: _Term) -> None:
        wait_ns = term.lease.due_in_ns()
        if wait_ns > 0:
            self._sleep(wait_ns / 1e9)  # fail() and lost() wake it early
        if term.data_lost is not None and term.sequences is not None:
            sequences, term.sequences = term.sequences, None
            sequences.abandon()
        if term.failed is not None:
            self._step_down(term, term.failed, resign=True)
            return
        if self._stopping.is_set() or term.lease.due_in_ns() > 0:
            return
        sent = self._now()
        try:
            self.coordinator.renew(term.token, self._ttl_ms)
        except LeadershipLost as exc:
            self._refused_in_lease(term)
            self._step_down(term, f"lease lost: {exc}", resign=False)
            return
        except StoreUnavailable as exc:
            # Try again soon, not a whole renewal period later: the lease is running out.
            live = term.lease.failed()
            if term.failed is not None:
                # A stuck watermark write can hold up the renewal too (it locks the lease
                # row): name the root cause, not its echo.
                self._step_down(term, term.failed, resign=True)
            elif not live:
                self._step_down(
                    term,
                    f"lease can no longer be confirmed, stopped issuing at its deadline: {exc}",
                    resign=True,
                )
            else:
                log.warning(
                    "lease renewal failed (still within the lease): %s",
                    exc,
                    extra=event("renewal_failed"),
                )
            return
        term.lease.confirmed(sent)

    def _step_down(self, term: _Term, reason: str, *, resign: bool) -> None:
        """End ``term``; with ``resign`` (a failure of this member's own, not a lost lease)
        free the lease, now or as soon as the store answers, and cool off before campaigning.
        """
        if self._term is not term:
            return
        self._term = None
        self.leader_address = None
        self.reason = reason
        self.step_downs += 1
        log.warning(
            "stepping down from term %d: %s",
            term.token,
            reason,
            extra=event("stepped_down", term=term.token),
        )
        if term.sequences is not None:
            term.sequences.abandon()
        if resign:
            self._resign_quietly(term.token, term.lease)
            self._cool_off()

    def _cool_off(self) -> None:
        self._cool_off_until_ns = self._now() + round(COOL_OFF_POLLS * self._poll_s * 1e9)

    def _resign_quietly(self, token: int, lease: LeaseKeeper, *, closing: bool = False) -> None:
        """Resign term ``token`` (whose lease is ``lease``), the one home of "a resignation is
        kept until the store hears it": if the store does not answer, keep it to retry while
        standing by; when ``closing`` (no standing by follows), send it again every standby
        poll until the store hears it or ``lease``'s deadline passes, when the term would
        have ended anyway.

        Resigning is fenced (it ends the term only if it is still the live one), so a late
        retry cannot end a successor's term; until it succeeds, the lease frees itself when it
        expires, which can be much later (etcd renews every lease when its raft leader changes).
        """
        try:
            if closing:
                lease.give_back(functools.partial(self.coordinator.resign, token), self._sleep)
            else:
                self.coordinator.resign(token)
        except StoreUnavailable as exc:
            if closing:
                log.warning(
                    "could not resign term %d (it expires by itself): %s",
                    token,
                    exc,
                    extra=event("resign_failed", term=token),
                )
            elif self._unresigned != token:
                log.warning(
                    "could not resign term %d yet (retrying while standing by): %s",
                    token,
                    exc,
                    extra=event("resign_failed", term=token),
                )
                self._unresigned, self._unresigned_lease = token, lease
            return
        log.info("resigned term %d", token, extra=event("resigned", term=token))
        if self._unresigned == token:
            self._unresigned = self._unresigned_lease = None


def check_lease_ttl(ttl_s: float) -> None:
    """Refuse a lease TTL outside 1 s..MAX_TTL (NaN and infinity too, which no clock holds)."""
    if not 1.0 <= ttl_s <= MAX_TTL:
        raise InvalidArgument(f"lease ttl must be 1 to {MAX_TTL:g} seconds, got {ttl_s!r}")


def open_election(
    url: str,
    *,
    address: str,
    make_sequences: Callable[[WatermarkStore], Sequences],
    cluster: str = "default",
    member: str | None = None,
    ttl_s: float = DEFAULT_TTL,
) -> Elector:
    """An :class:`Elector` on the store at ``url`` (``postgresql://...`` or
    ``etcd://host:port[,host:port...]``), not started.

    ``member`` defaults to ``<hostname>:<pid>``. Every store statement and write times out
    after ``min(1 s, ttl_s / 3)``, well inside the lease, so a sick store ends the term before
    the lease does.

    Raises:
        InvalidArgument: a bad URL, address, cluster name or ``ttl_s`` outside 1..86400 s.
    """
    check_lease_ttl(ttl_s)
    address = check_address(address)
    coordinator = open_coordinator(url, cluster, min(1.0, ttl_s / 3))
    return Elector(
        coordinator,
        member=member or f"{socket.gethostname()}:{os.getpid()}",
        address=address,
        make_sequences=make_sequences,
        ttl_s=ttl_s,
    )
