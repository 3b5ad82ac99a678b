"""chronoid: time-ordered unique IDs and sequences for distributed systems.

Quick start::

    from chronoid import ChronoSequence, Generator

    ids = ChronoSequence(worker_id=7)      # Snowflake 1/41/10/12, ms since 2024-01-01
    ids.next_id()                          # -> 2**22-spaced, strictly increasing ints
    Generator("chrono64s", node=3).next_ids(1000)
"""

from chronoid.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from chronoid.codec import decode_base32, encode_base32, format_id, format_ids, parse_id
from chronoid.errors import (
    AmbiguousId,
    ChronoidError,
    ClockBeforeEpoch,
    ClockJumpedForward,
    ClockLeadExceeded,
    ClockMovedBackwards,
    DecodeError,
    GeneratorForked,
    InvalidArgument,
    InvalidLayout,
    InvalidNode,
    MissingExtra,
    SequenceExhausted,
    TimestampOutOfRange,
    UnknownVariant,
)
from chronoid.generator import Backwards, ChronoSequence, Generator, Overflow, hlc_generator
from chronoid.layout import IdParts, Layout
from chronoid.variants import SNOWFLAKE, VARIANTS, VariantName, get_layout, time_of

__all__ = [
    "SNOWFLAKE",
    "SYSTEM_CLOCK",
    "VARIANTS",
    "AmbiguousId",
    "Backwards",
    "ChronoSequence",
    "ChronoidError",
    "Clock",
    "ClockBeforeEpoch",
    "ClockJumpedForward",
    "ClockLeadExceeded",
    "ClockMovedBackwards",
    "DecodeError",
    "Generator",
    "GeneratorForked",
    "IdParts",
    "InvalidArgument",
    "InvalidLayout",
    "InvalidNode",
    "Layout",
    "ManualClock",
    "MissingExtra",
    "Overflow",
    "SequenceExhausted",
    "SystemClock",
    "TimestampOutOfRange",
    "UnknownVariant",
    "VariantName",
    "decode_base32",
    "encode_base32",
    "format_id",
    "format_ids",
    "get_layout",
    "hlc_generator",
    "parse_id",
    "time_of",
]
