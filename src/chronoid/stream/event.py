"""The immutable event ChronoStream emits, and its pure builder (spec 001 ``internal/event``).

An event's identity is deterministic: the same frequency, boundary and sequence always give
the same ``id`` and ``seed``. The ``id`` keeps spec 001's form ``{freq}-{timestamp}-{seq}``,
but the sequence is a per-process counter (from 1 at every start), so two producers, or one
restarted, give the same boundary different ``id`` values. What identifies a *boundary* is
``{freq}-{timestamp}``: :attr:`Event.boundary_id`, the key the sinks deduplicate on. The
builder reads no clock, draws no randomness and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from chronoid.errors import InvalidArgument

__all__ = ["SCHEMA_VERSION", "Event", "Frequency", "build"]

SCHEMA_VERSION = 1
"""Version of the event's fields; bumped on any change a consumer would notice."""


class Frequency(IntEnum):
    """How often a stream emits: one event per aligned boundary of this size."""

    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4

    @property
    def label(self) -> str:
        """Lower-case name used in event IDs, JSON and the CLI (``"second"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Frequency:
        """``"second"``, ``"minute"``, ``"hour"`` or ``"day"`` (case-insensitive).

        Raises:
            InvalidArgument: any other text.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(f.label for f in cls)
            raise InvalidArgument(f"unknown frequency {text!r}; allowed: {allowed}") from None


@dataclass(frozen=True, slots=True)
class Event:
    """One emitted boundary.

    Attributes:
        id: ``"{frequency}-{timestamp}-{sequence}"``, e.g. ``"second-1767225600000000000-1"``.
        timestamp: the boundary the event stands for (ns since the Unix epoch, UTC), never
            the moment it was emitted.
        frequency: the stream's frequency.
        sequence: per-frequency counter, from 1, never reset.
        seed: ``timestamp XOR sequence``: a reproducible value for downstream consumers.
        schema_version: always :data:`SCHEMA_VERSION`.
        producer_version, instance_id: injected by whoever runs the producer.
        late: True for a catch-up event emitted after a forward clock jump or a stall.
    """

    id: str
    timestamp: int
    frequency: Frequency
    sequence: int
    seed: int
    schema_version: int
    producer_version: str
    instance_id: str
    late: bool = False

    @property
    def boundary_id(self) -> str:
        """``"{frequency}-{timestamp}"``: the same for every producer that emits this boundary,
        before or after a restart (no per-process counter in it). Sinks deduplicate on it."""
        return f"{self.frequency.label}-{self.timestamp}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, plus ``time`` (the boundary as ISO 8601 UTC)."""
        seconds, rest = divmod(self.timestamp, 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "time": moment.isoformat().replace("+00:00", "Z"),
            "frequency": self.frequency.label,
            "sequence": self.sequence,
            "seed": self.seed,
            "schema_version": self.schema_version,
            "producer_version": self.producer_version,
            "instance_id": self.instance_id,
            "late": self.late,
        }


def build(
    frequency: Frequency,
    timestamp: int,
    sequence: int,
    producer_version: str = "",
    instance_id: str = "",
    *,
    late: bool = False,
) -> Event:
    """Build an event: a pure function of its arguments.

    Raises:
        InvalidArgument: a negative timestamp or a sequence below 1.
    """
    if timestamp < 0:
        raise InvalidArgument(f"timestamp must be >= 0 ns, got {timestamp}")
    if sequence < 1:
        raise InvalidArgument(f"sequence starts at 1, got {sequence}")
    return Event(
        id=f"{frequency.label}-{timestamp}-{sequence}",
        timestamp=timestamp,
        frequency=frequency,
        sequence=sequence,
        seed=timestamp ^ sequence,
        schema_version=SCHEMA_VERSION,
        producer_version=producer_version,
        instance_id=instance_id,
        late=late,
    )
