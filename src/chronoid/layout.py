"""Layout: how an ID's bits split into timestamp, node and sequence.

One concept covers the Snowflake layout and every ChronoID variant: a time unit, an epoch,
the widths of the three fields (T/N/S bits), signed or unsigned, and the total width. An
ID is ``timestamp << (N + S) | node << S | sequence``; a signed layout keeps the top bit 0
so the value fits a signed integer column (PostgreSQL ``bigint``/``integer``).

Fixed units (µs ... weeks) count whole units since the epoch. Calendar units (month,
quarter, half-year, year) count calendar months on the UTC calendar, so a "month" tick
starts at 00:00 UTC on the 1st, whatever the month's length.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chronoid.errors import (
    DecodeError,
    InvalidArgument,
    InvalidLayout,
    InvalidNode,
    TimestampOutOfRange,
)

__all__ = ["MEAN_MONTH_S", "UNITS", "IdParts", "Layout", "TimeUnit"]

_NS_PER_S = 1_000_000_000

MEAN_MONTH_S = 2_629_746
"""A mean Gregorian month (365.2425 / 12 days) in seconds: month starts stay within 2.7 days
of a multiple of it, so rates, window counts and SQL rounding may use it; ticks never do."""


@dataclass(frozen=True, slots=True)
class TimeUnit:
    """One tick of a layout's timestamp: a fixed duration (``ns``) or whole calendar months."""

    code: str
    description: str
    ns: int | None = None
    months: int | None = None

    @property
    def is_calendar(self) -> bool:
        """True for month-based units, whose length in ns varies."""
        return self.months is not None


UNITS: dict[str, TimeUnit] = {
    u.code: u
    for u in (
        TimeUnit("us", "microsecond", ns=1_000),
        TimeUnit("ms", "millisecond", ns=1_000_000),
        TimeUnit("cs", "centisecond (10 ms)", ns=10_000_000),
        TimeUnit("ds", "decisecond (100 ms)", ns=100_000_000),
        TimeUnit("s", "second", ns=_NS_PER_S),
        TimeUnit("bs", "2 seconds", ns=2 * _NS_PER_S),
        TimeUnit("m", "minute", ns=60 * _NS_PER_S),
        TimeUnit("tm", "10 minutes", ns=600 * _NS_PER_S),
        TimeUnit("h", "hour", ns=3_600 * _NS_PER_S),
        TimeUnit("d", "day", ns=86_400 * _NS_PER_S),
        TimeUnit("w", "week (7 days from the epoch)", ns=7 * 86_400 * _NS_PER_S),
        TimeUnit("mo", "calendar month (UTC)", months=1),
        TimeUnit("q", "calendar quarter (UTC)", months=3),
        TimeUnit("hy", "calendar half-year (UTC)", months=6),
        TimeUnit("y", "calendar year (UTC)", months=12),
    )
}


def _to_ns(moment: datetime) -> int:
    return calendar.timegm(moment.utctimetuple()) * _NS_PER_S + moment.microsecond * 1_000


@dataclass(frozen=True, slots=True)
class IdParts:
    """An ID taken apart: raw fields plus the moment its tick starts.

    ``timestamp`` is the raw field (ticks of ``layout.unit`` since ``layout.epoch``);
    ``time`` is the start of that tick as an aware UTC datetime. ``node`` and ``sequence``
    are the raw field values (mixed values, if the ID was made by a mixing mode).
    """

    id: int
    timestamp: int
    time: datetime
    node: int
    sequence: int
    layout: Layout


@dataclass(frozen=True, slots=True)
class Layout:
    """A bit layout for time-ordered IDs, validated once at construction.

    Args:
        name: a label used in messages and tables.
        unit: a key of :data:`UNITS` (``"ms"``, ``"s"``, ``"mo"``, ...).
        epoch: an aware datetime; tick 0 starts here. Calendar units need the 1st of a
            month at 00:00 UTC.
        timestamp_bits, node_bits, sequence_bits: field widths (bits).
        width: total width of the integer (bits), e.g. 64 or 32.
        signed: keep the top bit 0 so the ID fits a signed integer of ``width`` bits.

    Raises:
        InvalidLayout: widths that do not add up, an unknown unit, a naive epoch.
    """

    name: str
    unit_code: str
    epoch: datetime
    timestamp_bits: int
    node_bits: int
    sequence_bits: int
    width: int = 64
    signed: bool = True
    unit: TimeUnit = field(init=False, repr=False, compare=False)
    epoch_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unit = UNITS.get(self.unit_code)
        if unit is None:
            raise InvalidLayout(
                f"layout {self.name!r}: unknown time unit {self.unit_code!r}; "
                f"allowed: {', '.join(UNITS)}"
            )
        for label, bits in (
            ("timestamp_bits", self.timestamp_bits),
            ("node_bits", self.node_bits),
            ("sequence_bits", self.sequence_bits),
            ("width", self.width),
        ):
            if not isinstance(bits, int) or isinstance(bits, bool) or bits < 0:
                raise InvalidLayout(
                    f"layout {self.name!r}: {label} must be a non-negative int, got {bits!r}"
                )
        if self.timestamp_bits < 1:
            raise InvalidLayout(f"layout {self.name!r}: timestamp_bits must be at least 1")
        if not 8 <= self.width <= 128:
            raise InvalidLayout(
                f"layout {self.name!r}: width must be 8..128 bits, got {self.width}"
            )
        usable = self.width - 1 if self.signed else self.width
        total = self.timestamp_bits + self.node_bits + self.sequence_bits
        if total != usable:
            kind = "signed" if self.signed else "unsigned"
            raise InvalidLayout(
                f"layout {self.name!r}: {self.timestamp_bits}+{self.node_bits}+"
                f"{self.sequence_bits} = {total} bits, but a {kind} {self.width}-bit ID "
                f"has {usable} bits for its fields"
            )
        if self.epoch.tzinfo is None or self.epoch.utcoffset() is None:
            raise InvalidLayout(
                f"layout {self.name!r}: epoch {self.epoch!r} must be timezone-aware (UTC)"
            )
        # No comparison with the clock here: the named layouts are built at import, and a host
        # whose clock reads before an epoch (a new VM, a dead RTC battery) must still import
        # chronoid and decode IDs; a generator refuses to issue with ClockBeforeEpoch instead.
        epoch_ns = _to_ns(self.epoch)
        if unit.is_calendar:
            e = self.epoch.astimezone(UTC)
            if (e.day, e.hour, e.minute, e.second, e.microsecond) != (1, 0, 0, 0, 0):
                raise InvalidLayout(
                    f"layout {self.name!r}: a {unit.description} layout needs an epoch at "
                    f"00:00 UTC on the 1st of a month, got {self.epoch.isoformat()}"
                )
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "epoch_ns", epoch_ns)

    # -- derived sizes ---------------------------------------------------------------------

    @property
    def max_timestamp(self) -> int:
        """Largest encodable timestamp field value (ticks)."""
        return (1 << self.timestamp_bits) - 1

    @property
    def max_node(self) -> int:
        """Largest node ID (0 when the layout has no node bits)."""
        return (1 << self.node_bits) - 1

    @property
    def max_sequence(self) -> int:
        """Largest sequence value within one tick."""
        return (1 << self.sequence_bits) - 1

    @property
    def ids_per_tick(self) -> int:
        """IDs one node can make in one tick (2^S)."""
        return 1 << self.sequence_bits

    @property
    def suffix_bits(self) -> int:
        """Node plus sequence bits: the space uncoordinated generators share per tick."""
        return self.node_bits + self.sequence_bits

    @property
    def max_id(self) -> int:
        """Largest integer this layout can produce."""
        return (1 << (self.width - 1 if self.signed else self.width)) - 1

    @property
    def unit_ns(self) -> int | None:
        """Length of one tick in ns, or None for calendar units (months vary)."""
        return self.unit.ns

    @property
    def mean_unit_ns(self) -> int:
        """Length of one tick in ns, a calendar unit counted in mean months (:data:`MEAN_MONTH_S`).

        For rates and window counts only: a real month tick is 28 to 31 days long.
        """
        if self.unit.ns is not None:
            return self.unit.ns
        assert self.unit.months is not None
        return self.unit.months * MEAN_MONTH_S * _NS_PER_S

    @property
    def expiry(self) -> datetime:
        """First instant the timestamp field can no longer hold (UTC)."""
        return self.time_of(self.max_timestamp + 1)

    # -- time <-> ticks --------------------------------------------------------------------

    def tick_of_ns(self, unix_ns: int) -> int:
        """The tick (timestamp field value) containing ``unix_ns`` (ns since 1970, UTC).

        Raises:
            TimestampOutOfRange: before the epoch or at/after the expiry.
        """
        unit_ns = self.unit.ns
        if unit_ns is not None:
            tick = (unix_ns - self.epoch_ns) // unit_ns
        else:
            assert self.unit.months is not None
            moment = datetime.fromtimestamp(unix_ns // _NS_PER_S, tz=UTC)
            epoch = self.epoch.astimezone(UTC)
            months = (moment.year - epoch.year) * 12 + (moment.month - epoch.month)
            tick = months // self.unit.months
        if tick < 0:
            raise TimestampOutOfRange(
                f"{self.name}: time {unix_ns} ns is before the epoch {self.epoch.isoformat()}"
            )
        if tick > self.max_timestamp:
            raise TimestampOutOfRange(
                f"{self.name}: time {unix_ns} ns is past the layout's expiry "
                f"{self.expiry.isoformat()} ({self.timestamp_bits} timestamp bits)"
            )
        return tick

    def tick_start_ns(self, tick: int) -> int:
        """Start of ``tick`` in ns since 1970 (UTC); accepts one past the last tick."""
        unit_ns = self.unit.ns
        if unit_ns is not None:
            return self.epoch_ns + tick * unit_ns
        assert self.unit.months is not None
        epoch = self.epoch.astimezone(UTC)
        months = epoch.year * 12 + epoch.month - 1 + tick * self.unit.months
        year, month = divmod(months, 12)
        if year > 9999:
            # Beyond datetime's range: still exact in seconds via timegm.
            return calendar.timegm((year, month + 1, 1, 0, 0, 0)) * _NS_PER_S
        return _to_ns(datetime(year, month + 1, 1, tzinfo=UTC))

    def time_of(self, tick: int) -> datetime:
        """Start of ``tick`` as an aware UTC datetime."""
        ns = self.tick_start_ns(tick)
        seconds, rest = divmod(ns, _NS_PER_S)
        return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1_000)

    # -- pack / unpack ---------------------------------------------------------------------

    def check_node(self, node: object, label: str = "node") -> int:
        """``node``, if it is an int the node field holds; the one node check of every mode.

        Raises:
            InvalidNode: not an int, or outside 0..max_node; ``label`` names it in the message.
        """
        if not isinstance(node, int) or isinstance(node, bool):
            raise InvalidNode(f"{label} must be an int, got {type(node).__name__} {node!r}")
        if not 0 <= node <= self.max_node:
            raise InvalidNode(
                f"{label} {node} is out of range for {self.name}: "
                f"allowed 0..{self.max_node} ({self.node_bits} bits)"
            )
        return node

    def pack(self, timestamp: int, node: int, sequence: int) -> int:
        """Assemble an ID from raw field values; each must fit its field.

        Raises:
            TimestampOutOfRange: timestamp outside 0..max_timestamp.
            InvalidNode: node outside 0..max_node (see :meth:`check_node`).
            InvalidArgument: sequence outside 0..max_sequence.
        """
        if not 0 <= timestamp <= self.max_timestamp:
            raise TimestampOutOfRange(
                f"{self.name}: timestamp {timestamp} outside 0..{self.max_timestamp}"
            )
        self.check_node(node)
        if not 0 <= sequence <= self.max_sequence:
            raise InvalidArgument(
                f"{self.name}: sequence {sequence} outside 0..{self.max_sequence}"
            )
        return (
            (timestamp << (self.node_bits + self.sequence_bits))
            | (node << self.sequence_bits)
            | sequence
        )

    def unpack(self, value: int) -> IdParts:
        """Take an ID apart.

        Raises:
            DecodeError: not an int, negative, or wider than the layout.
        """
        if not isinstance(value, int) or isinstance(value, bool):
            raise DecodeError(f"{self.name}: an ID is an int, got {type(value).__name__}")
        if not 0 <= value <= self.max_id:
            raise DecodeError(f"{self.name}: ID {value} outside 0..{self.max_id}")
        timestamp = value >> (self.node_bits + self.sequence_bits)
        return IdParts(
            id=value,
            timestamp=timestamp,
            time=self.time_of(timestamp),
            node=(value >> self.sequence_bits) & self.max_node,
            sequence=value & self.max_sequence,
            layout=self,
        )

    def time_of_id(self, value: int) -> datetime:
        """When the ID ``value`` was made: the start of its tick, an aware UTC datetime.

        Raises:
            DecodeError: not an int, negative, or wider than the layout.
        """
        return self.unpack(value).time

    def node_of(self, value: int) -> int:
        """The node field of an ID: one shift and a mask (shard routing)."""
        return (value >> self.sequence_bits) & self.max_node

    def bits_label(self) -> str:
        """``T/N/S`` widths, e.g. ``41/10/12``."""
        return f"{self.timestamp_bits}/{self.node_bits}/{self.sequence_bits}"
