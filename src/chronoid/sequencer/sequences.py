"""In-memory counters backed by durable high-watermark reservations.

Each named sequence hands out values from memory, below a *watermark* already made durable
by the :class:`~chronoid.sequencer.store.WatermarkStore`. Before the values left below the
watermark drop under half a block, the next block is reserved in a background thread, so a
request never waits for an fsync unless it asks for more than the reserved headroom.

Block size adapts to load: when the reservation before this one was made less than
``GROW_WINDOW_S`` (1 s) ago the block doubles (up to ``block_max``); when it was made more than
``SHRINK_WINDOW_S`` (60 s) ago it halves (down to ``block_min``). At most ``1.5 × block`` values
sit reserved above the next value, so a crash leaves a gap below two blocks; a clean stop
(:meth:`Sequences.close`) stores the exact next value and leaves no gap.

If a reservation fails (full disk: ``ENOSPC``/``EDQUOT``, or any other error) the values
already reserved are still handed out, then every request beyond them fails with
:class:`StoreUnavailable` until a retry (at most once per second) succeeds: a repeat is never
risked. Only the event-loop thread may call :meth:`Sequences.try_take`, :meth:`take` and
:meth:`current`.

The server never waits for the store on its event-loop thread: :meth:`Sequences.try_take`
returns the first value when it is already reserved and otherwise starts the reservation in
the writer thread and returns its :class:`~concurrent.futures.Future`; the connection waits
for it alone and asks again. :meth:`take` is the blocking form (tests, tools).

A new name becomes a sequence only once its first reservation is durable, so a creation that
fails (full disk) takes no slot of ``max_sequences``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from chronoid.errors import InvalidArgument, SequenceRangeExhausted, StoreUnavailable
from chronoid.sequencer.logs import event
from chronoid.sequencer.metrics import LatencyHistogram
from chronoid.sequencer.store import WatermarkStore

__all__ = [
    "BLOCK_MAX",
    "BLOCK_MIN",
    "DEFAULT_NAME",
    "MAX_COUNT",
    "MAX_SEQUENCES",
    "MAX_VALUE",
    "NAME_PATTERN",
    "WAIT_TIMEOUT_S",
    "Sequences",
]

log = logging.getLogger("chronoid.sequencer")

DEFAULT_NAME = "default"
"""The sequence that ``GETSEQ`` and ``CURRENT`` without a name use."""
BLOCK_MIN = 1024
"""Smallest reservation block (values)."""
BLOCK_MAX = 65536
"""Largest reservation block (values): the bound on the gap a crash leaves is 2 × this."""
MAX_COUNT = 1_000_000
"""Largest ``GETSEQ <count>`` (values per request)."""
MAX_VALUE = 2**63 - 1
"""Largest value handed out, so every client can store it in a signed 64-bit integer."""
MAX_SEQUENCES = 1000
"""Default of ``max_sequences``: most named sequences one server holds (each costs memory and
a line of the state file, is never deleted, and its first reservation costs an fsync)."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""What a sequence name may be: 1-64 letters, digits, ``_ . : -``."""
GROW_WINDOW_S = 1.0
"""Reservations closer together than this (s) double the block."""
SHRINK_WINDOW_S = 60.0
"""Reservations further apart than this (s) halve the block."""
RETRY_AFTER_S = 1.0
"""After a failed reservation, wait this long (s) before trying the store again."""
WAIT_TIMEOUT_S = 10.0
"""Longest time (s) a request waits for a reservation in flight or the write lock: a store
stuck past its own timeouts (a commit waiting on a stalled disk) must not freeze the server."""


@dataclass(slots=True)
class _Sequence:
    name: str
    next: int
    limit: int  # durable watermark: values below it may be handed out
    block: int
    reserved_at_s: float = 0.0
    prefetching: bool = False  # set by the loop before submit, cleared by the writer
    future: Future[None] | None = None
    failure: BaseException | None = None
    failed_at_s: float = 0.0
    stored: int = 0  # last watermark written (for the clean stop)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refill_below: int = field(init=False)
    """Values left below the watermark under which the next block is prefetched: half a
    block, kept beside ``block`` so the hot path reads it instead of shifting per take."""

    def __post_init__(self) -> None:
        self.refill_below = self.block >> 1

    def resize(self, block: int) -> None:
        """Change the block (values) and the prefetch threshold with it."""
        self.block = block
        self.refill_below = block >> 1


@dataclass(slots=True)
class SequenceStats:
    """Counters for INFO and metrics (since the process started)."""

    values_issued: int = 0
    reservations: int = 0
    reservation_seconds: float = 0.0
    reservation_errors: int = 0
    synchronous_reservations: int = 0
    watermark_write_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Latency of every watermark write, successful or not (s)."""


class Sequences:
    """All named sequences of one server, reserving ahead through ``store``.

    ``initial`` is where the default sequence starts when the store has no value for it, or
    when it is above the stored value. A lower ``initial`` is ignored (a sequence never moves
    backwards) unless ``force_initial`` is true.

    ``floor`` and ``ceiling`` bound every value of every sequence (multi-site mode gives each
    site a disjoint range): new sequences start at ``floor`` and none goes past ``ceiling``.

    ``wait_timeout_s`` bounds how long a request waits for a reservation another thread is
    writing; past it the request fails with :class:`StoreUnavailable` and nothing is issued.
    ``clock`` reads monotonic seconds (the block's grow/shrink windows and the retry pause
    are measured on it; a test passes a manual one).

    ``max_sequences`` bounds the names (the default one included); ``allowed``, when given,
    is the only names besides ``default`` a client may use (others are refused, even stored
    ones, which keep their watermark).
    """

    def __init__(
        self,
        store: WatermarkStore,
        initial: int = 1,
        *,
        force_initial: bool = False,
        block_min: int = BLOCK_MIN,
        block_max: int = BLOCK_MAX,
        floor: int = 1,
        ceiling: int = MAX_VALUE,
        clock: Callable[[], float] = time.monotonic,
        wait_timeout_s: float = WAIT_TIMEOUT_S,
        max_sequences: int = MAX_SEQUENCES,
        allowed: Iterable[str] | None = None,
    ) -> None:
        _check_settings(initial, floor, ceiling, block_min, block_max, wait_timeout_s)
        self.allowed = _allowed_names(allowed, max_sequences)
        self.max_sequences = max_sequences
        self.wait_timeout_s = wait_timeout_s
        self.store = store
        self.block_min = block_min
        self.block_max = block_max
        self.floor = floor
        self.ceiling = ceiling
        self.stats = SequenceStats()
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chronoid-reserve")
        self._closed = False
        self._sequences: dict[str, _Sequence] = self._load()
        self._creating: dict[str, _Sequence] = {}  # first reservation not yet durable
        default = self._place_default(initial, force_initial)
        # Reserve the first block of the default sequence before serving anything (an
        # exhausted one still starts: it answers every request with an error).
        if default.next <= ceiling:
            self._reserve_now(default, default.next + 1)

    def _load(self) -> dict[str, _Sequence]:
        """The stored sequences this server serves (inside its range, and allowed)."""
        loaded: dict[str, _Sequence] = {}
        for name, high in self.store.load().items():
            if high > self.ceiling + 1:
                raise InvalidArgument(
                    f"stored watermark {high} of sequence {name!r} is above this server's "
                    f"range {self.floor}..{self.ceiling}: the store belongs to another site"
                )
            if self.allowed is not None and name not in self.allowed:
                # Not served, not rewritten: the store keeps its watermark for a later run.
                log.warning("sequence %r is stored but not in allowed: refusing it", name)
                continue
            start = max(high, self.floor)
            loaded[name] = _Sequence(name, start, start, self.block_min, stored=high)
        return loaded

    def _place_default(self, initial: int, force_initial: bool) -> _Sequence:
        """The default sequence, started at ``initial`` when it is new or behind it (or
        moved back to it with ``force_initial``)."""
        default = self._sequences.get(DEFAULT_NAME)
        if default is None:
            default = _Sequence(DEFAULT_NAME, initial, initial, self.block_min)
            self._sequences[DEFAULT_NAME] = default
        elif initial > default.next or (force_initial and initial != default.next):
            if initial < default.next:
                log.warning(
                    "force_initial moves sequence %r back from %d to %d: values may repeat",
                    DEFAULT_NAME,
                    default.next,
                    initial,
                    extra=event("initial_forced", sequence=DEFAULT_NAME),
                )
            default.next = default.limit = initial
        elif initial < default.next and initial != self.floor:
            log.warning(
                "initial %d is below the stored next value %d of %r; keeping %d "
                "(force_initial moves it back)",
                initial,
                default.next,
                DEFAULT_NAME,
                default.next,
                extra=event("initial_ignored", sequence=DEFAULT_NAME),
            )
        return default

    # -- issuing (event-loop thread) -------------------------------------------------------

    def try_take(self, count: int = 1, name: str = DEFAULT_NAME) -> int | Future[None]:
        """Hand out ``count`` consecutive values of ``name`` and return the first, or, when
        they are not reserved yet, a future that completes once a reservation was written
        (or failed): call again then. Never blocks.

        Raises :class:`InvalidArgument` for a count outside 1..MAX_COUNT, a bad, refused or
        one-too-many name or the end of the range, and :class:`StoreUnavailable` when the
        values cannot be reserved durably; either way nothing is consumed.
        """
        try:
            seq: _Sequence | None = self._sequences[name]  # a subscript costs less than get()
        except KeyError:
            seq = None
        if seq is not None and 0 < count <= MAX_COUNT:
            # The fast path first, in as few steps as it takes: most calls end here (the
            # dispatcher's fused reader repeats it, see fast_take_parts: change both).
            first = seq.next
            end = first + count
            limit = seq.limit
            if end <= limit:
                seq.next = end
                if limit - end < seq.refill_below and not seq.prefetching:  # rarely true first
                    self._prefetch(seq)
                self.stats.values_issued += count
                return first
            return self._reserve_for(seq, end)
        if not 1 <= count <= MAX_COUNT:
            raise InvalidArgument(f"count must be an int in 1..{MAX_COUNT}, got {count!r}")
        return self._create(name, count)

    def fast_take_parts(self) -> tuple[_Sequence, Callable[[_Sequence], None], SequenceStats]:
        """The default sequence's record, the prefetch it starts and the stats it counts
        in, for a fused fast path built once (the dispatcher's plain-``GETSEQ`` reader): it
        repeats :meth:`try_take`'s fast path (the same reads and writes, in the same order)
        and calls :meth:`try_take` itself for anything else. The record lives as long as
        these sequences (the default one is never replaced)."""
        return self._sequences[DEFAULT_NAME], self._prefetch, self.stats

    def take(self, count: int = 1, name: str = DEFAULT_NAME) -> int:
        """:meth:`try_take`, waiting (at most ``wait_timeout_s`` per reservation) when it must."""
        while True:
            first = self.try_take(count, name)
            if isinstance(first, int):
                return first
            self._wait(first, name)

    def _wait(self, future: Future[None], name: str) -> None:
        try:
            future.result(self.wait_timeout_s)  # _write never raises; it records failures
        except CancelledError:  # abandon() cancelled it: the term is over
            raise StoreUnavailable(
                f"sequence {name!r}: its reservation was cancelled (stepping down)"
            ) from None
        except TimeoutError:
            raise StoreUnavailable(
                f"sequence {name!r}: a reservation has been writing for more than "
                f"{self.wait_timeout_s:g} s (a stalled store?)"
            ) from None

    def current(self, name: str = DEFAULT_NAME) -> int:
        """The value the next ``take(1, name)`` returns (``floor`` for a new sequence).

        Raises :class:`SequenceRangeExhausted` once the last value (``ceiling``) is out.
        """
        seq = self._sequences.get(name)
        if seq is None or (self.allowed is not None and name not in self.allowed):
            self._check_allowed(name)
            return self.floor
        if seq.next > self.ceiling:
            raise _exhausted(seq.name, self.ceiling)
        return seq.next

    def names(self) -> list[str]:
        """Every sequence name, sorted."""
        return sorted(self._sequences)

    def block(self, name: str = DEFAULT_NAME) -> int:
        """The current reservation block of ``name`` (values)."""
        seq = self._sequences.get(name)
        return seq.block if seq is not None else self.block_min

    def failure(self) -> str | None:
        """Why the last watermark write of some sequence failed, or None when every last
        write succeeded (readiness: a failing store cannot issue beyond its headroom).
        Any thread may call it."""
        for seq in list(self._sequences.values()):
            failure = seq.failure
            if failure is not None:
                return f"sequence {seq.name!r}: {failure}"
        return None

    def close(self) -> None:
        """Wait for reservations in flight, then store each sequence's exact next value."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        # A snapshot: the event loop may still take meanwhile (with failover it takes from the
        # term lent last, then finds it over), and a take can promote a creation into the dict.
        for seq in list(self._sequences.values()):
            if seq.stored == seq.next:
                continue
            try:
                self.store.reserve(seq.name, seq.next)
                seq.stored = seq.next
            except (OSError, StoreUnavailable) as exc:
                # The larger watermark stays stored: a gap, never a repeat.
                log.error(
                    "could not store the exact next value of %r: %s",
                    seq.name,
                    exc,
                    extra=event("exact_next_not_stored", sequence=seq.name),
                )

    def abandon(self) -> None:
        """Stop without storing anything more (the term is over: writes would be fenced)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- reservations ----------------------------------------------------------------------

    def _check_allowed(self, name: str) -> None:
        _check_name(name)
        if self.allowed is not None and name not in self.allowed:
            raise InvalidArgument(
                f"sequence {name!r} is not among the names this server allows "
                f"(--sequences {','.join(sorted(self.allowed - {DEFAULT_NAME}))})"
            )

    def _create(self, name: str, count: int) -> int | Future[None]:
        """Start (or follow) the first reservation of a new name; it becomes a sequence once
        that reservation is durable (:meth:`_promote`)."""
        self._check_allowed(name)
        seq = self._creating.get(name)
        if seq is None:
            # Creations that failed are forgotten here: they take no slot.
            for other in [s for s in self._creating.values() if _failed(s)]:
                del self._creating[other.name]
            if len(self._sequences) + len(self._creating) >= self.max_sequences:
                raise InvalidArgument(
                    f"too many sequences: at most {self.max_sequences}; {name!r} would be one more"
                )
            seq = _Sequence(name, self.floor, self.floor, self.block_min)
            self._creating[name] = seq
        elif seq.future is not None and seq.future.done():
            del self._creating[name]
            if seq.failure is not None or seq.limit <= seq.next:
                raise StoreUnavailable(
                    f"cannot create sequence {name!r}: its first reservation failed: {seq.failure}"
                ) from seq.failure
            seq.future = None
            self._sequences[name] = seq
            return self.try_take(count, name)
        if seq.future is None:
            seq.future = self._submit(seq, seq.next + count + self._next_block(seq))
        return seq.future

    def _next_block(self, seq: _Sequence) -> int:
        now_s = self._clock()
        if seq.reserved_at_s:
            elapsed_s = now_s - seq.reserved_at_s
            if elapsed_s < GROW_WINDOW_S:
                seq.resize(min(seq.block * 2, self.block_max))
            elif elapsed_s > SHRINK_WINDOW_S:
                seq.resize(max(seq.block // 2, self.block_min))
        seq.reserved_at_s = now_s
        return seq.block

    def _prefetch(self, seq: _Sequence) -> None:
        if seq.failure is not None or self._closed:
            return  # the synchronous path retries (rate limited) once the headroom is gone
        high = min(max(seq.limit, seq.next) + self._next_block(seq), self.ceiling + 1)
        if high <= seq.limit:
            return
        seq.prefetching = True
        try:
            seq.future = self._executor.submit(self._write, seq, high)
        except RuntimeError:  # abandon() shut the executor down meanwhile (another thread)
            seq.prefetching = False

    def _reserve_for(self, seq: _Sequence, end: int) -> Future[None]:
        """Start a reservation covering ``end`` in the writer thread (or hand out the one
        already in flight: it may cover ``end``, the caller asks again either way)."""
        future = seq.future
        if future is not None and not future.done():
            return future
        if future is not None and future.cancelled():  # abandon(): the term is over
            raise StoreUnavailable(
                f"sequence {seq.name!r}: its reservation was cancelled (stepping down)"
            )
        seq.future = None
        if end > self.ceiling + 1:
            if seq.next > self.ceiling:
                raise _exhausted(seq.name, self.ceiling)
            raise SequenceRangeExhausted(
                f"sequence {seq.name!r} has only {self.ceiling - seq.next + 1} values left "
                f"(up to {self.ceiling}); {end - seq.next} were asked for"
            )
        if seq.failure is not None and self._clock() - seq.failed_at_s < RETRY_AFTER_S:
            raise StoreUnavailable(
                f"cannot reserve values of sequence {seq.name!r}: {seq.failure}"
            ) from seq.failure
        self.stats.synchronous_reservations += 1
        high = min(end + self._next_block(seq), self.ceiling + 1)
        return self._submit(seq, high)

    def _submit(self, seq: _Sequence, high: int) -> Future[None]:
        seq.prefetching = True
        try:
            seq.future = self._executor.submit(
                self._write, seq, high, lock_timeout_s=self.wait_timeout_s
            )
        except RuntimeError:  # closed or abandoned meanwhile
            seq.prefetching = False
            raise StoreUnavailable(
                f"sequence {seq.name!r}: reservations were cancelled (stepping down or stopping)"
            ) from None
        return seq.future

    def _reserve_now(self, seq: _Sequence, end: int) -> None:
        """Raise the watermark to at least ``end`` before returning (blocks; start-up only)."""
        while end > seq.limit:
            self._wait(self._reserve_for(seq, end), seq.name)
            if seq.failure is not None:
                raise StoreUnavailable(
                    f"cannot reserve values of sequence {seq.name!r}: {seq.failure}"
                ) from seq.failure

    def _write(self, seq: _Sequence, high: int, *, lock_timeout_s: float = -1) -> None:
        """Store ``high`` and only then let values below it out (either thread).

        ``lock_timeout_s``: how long to wait for the sequence's write lock (-1: as long as it
        takes).
        """
        if not seq.lock.acquire(timeout=lock_timeout_s):
            seq.failure = StoreUnavailable(
                f"another reservation of {seq.name!r} has held the store for more than "
                f"{lock_timeout_s:g} s (a stalled store?)"
            )
            seq.failed_at_s = self._clock()
            self.stats.reservation_errors += 1
            return
        try:
            started_s = time.perf_counter()
            try:
                if high <= seq.limit:
                    # Already covered by a write that landed meanwhile. Writing it anyway
                    # could lower the stored watermark under values already handed out.
                    return
                self.store.reserve(seq.name, high)
            except Exception as exc:  # any failure: issue nothing above the old watermark
                seq.failure = exc
                seq.failed_at_s = self._clock()
                self.stats.reservation_errors += 1
                log.error(
                    "reservation of %r up to %d failed: %s",
                    seq.name,
                    high,
                    exc,
                    extra=event("reservation_failed", sequence=seq.name),
                )
            else:
                seq.stored = high
                if high > seq.limit:
                    seq.limit = high
                seq.failure = None
                self.stats.reservations += 1
            finally:
                elapsed_s = time.perf_counter() - started_s
                self.stats.reservation_seconds += elapsed_s
                self.stats.watermark_write_seconds.observe(elapsed_s)
                seq.prefetching = False
        finally:
            seq.lock.release()


def _check_settings(
    initial: int, floor: int, ceiling: int, block_min: int, block_max: int, wait_timeout_s: float
) -> None:
    if not 1 <= floor <= ceiling <= MAX_VALUE:
        raise InvalidArgument(
            f"need 1 <= floor <= ceiling <= {MAX_VALUE}, got {floor} and {ceiling}"
        )
    if not isinstance(initial, int) or isinstance(initial, bool) or not floor <= initial <= ceiling:
        raise InvalidArgument(f"initial must be an int in {floor}..{ceiling}, got {initial!r}")
    if not 1 <= block_min <= block_max:
        raise InvalidArgument(
            f"need 1 <= block_min <= block_max (values), got {block_min} and {block_max}"
        )
    if not 0 < wait_timeout_s < float("inf"):
        raise InvalidArgument(
            f"wait_timeout_s must be a number of seconds > 0, got {wait_timeout_s!r}"
        )


def _allowed_names(allowed: Iterable[str] | None, max_sequences: int) -> frozenset[str] | None:
    """The names a client may use (``default`` included), None for any; validated."""
    if not isinstance(max_sequences, int) or max_sequences < 1:
        raise InvalidArgument(f"max_sequences must be an int >= 1, got {max_sequences!r}")
    if allowed is None:
        return None
    names = frozenset(allowed) | {DEFAULT_NAME}
    for name in names:
        _check_name(name)
    if len(names) > max_sequences:
        raise InvalidArgument(
            f"{len(names)} allowed sequence names (default included) exceed "
            f"max_sequences {max_sequences}"
        )
    return names


def _failed(seq: _Sequence) -> bool:
    return seq.future is not None and seq.future.done() and seq.failure is not None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidArgument(f"sequence name must be 1-64 of A-Z a-z 0-9 _ . : -, got {name!r}")


def _exhausted(name: str, ceiling: int) -> SequenceRangeExhausted:
    return SequenceRangeExhausted(
        f"sequence {name!r} is exhausted: its last value {ceiling} has been handed out"
    )
