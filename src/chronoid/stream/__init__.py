"""ChronoStream: immutable events at aligned wall-clock boundaries (spec 001), in asyncio."""

from chronoid.stream.boundaries import next_boundary
from chronoid.stream.engine import Buffer, Engine, EngineStats, EventSequencer
from chronoid.stream.event import SCHEMA_VERSION, Event, Frequency, build
from chronoid.stream.scheduler import Scheduler, Tick
from chronoid.stream.sinks import RedisStreamSink, Sink, StdoutSink, parse_sink
from chronoid.stream.timesource import FakeTimeSource, SystemTimeSource, TimeSource

__all__ = [
    "SCHEMA_VERSION",
    "Buffer",
    "Engine",
    "EngineStats",
    "Event",
    "EventSequencer",
    "FakeTimeSource",
    "Frequency",
    "RedisStreamSink",
    "Scheduler",
    "Sink",
    "StdoutSink",
    "SystemTimeSource",
    "Tick",
    "TimeSource",
    "build",
    "next_boundary",
    "parse_sink",
]
