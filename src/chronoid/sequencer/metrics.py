"""Prometheus metrics for the sequencer, read from its counters at scrape time.

The request path only bumps plain integers (no Prometheus call per request); a custom
collector turns them into metrics when ``/metrics`` is scraped. The counters themselves
(the server's ``refusals``, :class:`LatencyHistogram`) are plain Python so the server keeps them
without the ``server`` extra; only :func:`render` needs prometheus-client, imported when the
first scrape arrives.

Every name the server exports is in :data:`METRIC_NAMES` (as the scrape shows it, ``_total``
and ``_bucket`` suffixes included); the Grafana dashboard in ``docs/`` is checked against it.
"""

from __future__ import annotations

import bisect
import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chronoid.version import package_version

if TYPE_CHECKING:
    from chronoid.sequencer.server import SequencerServer

__all__ = [
    "METRIC_NAMES",
    "WATERMARK_WRITE_BUCKETS_S",
    "LatencyHistogram",
    "make_registry",
    "render",
]

WATERMARK_WRITE_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (s) of the watermark write latency histogram: fsync on tmpfs is µs, on disks
ms, a PostgreSQL or etcd round trip ms to a lease's worth of seconds."""


class LatencyHistogram:
    """Counts of durations (s) by bucket, for a Prometheus histogram; safe from any thread.

    Observed once per watermark write (once per block of values), never per request.
    """

    __slots__ = ("_lock", "bounds_s", "counts", "sum_s")

    def __init__(self, bounds_s: tuple[float, ...] = WATERMARK_WRITE_BUCKETS_S) -> None:
        self.bounds_s = bounds_s
        self.counts = [0] * (len(bounds_s) + 1)  # the last one is +Inf
        self.sum_s = 0.0
        self._lock = threading.Lock()

    def observe(self, duration_s: float) -> None:
        """Record one duration."""
        index = bisect.bisect_left(self.bounds_s, duration_s)
        with self._lock:
            self.counts[index] += 1
            self.sum_s += duration_s

    def cumulative(self) -> tuple[list[tuple[str, int]], float]:
        """``([(le, count <= le), ..., ("+Inf", total)], sum)`` as Prometheus wants them."""
        with self._lock:
            counts = list(self.counts)
            total_s = self.sum_s
        buckets: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*(repr(b) for b in self.bounds_s), "+Inf"), counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets, total_s


_P = "chronoid_sequencer_"
METRIC_NAMES = frozenset(
    {
        "chronoid_build_info",
        f"{_P}requests_total",
        f"{_P}values_issued_total",
        f"{_P}active_connections",
        "chronoid_connections_refused_total",
        "chronoid_auth_failures_total",
        f"{_P}reservations_total",
        f"{_P}reservation_seconds_total",
        f"{_P}reservation_errors_total",
        f"{_P}error_replies_total",
        f"{_P}watermark_write_seconds_bucket",
        f"{_P}watermark_write_seconds_sum",
        f"{_P}watermark_write_seconds_count",
        f"{_P}sequence_next",
        f"{_P}sequence_block",
        f"{_P}ready",
        f"{_P}leader",
        f"{_P}term",
        f"{_P}step_downs_total",
        f"{_P}store_data_lost",
    }
)
"""Every sample name the server exports (``leader``, ``term``, ``step_downs_total`` and
``store_data_lost`` only with ``--ha``)."""


class _Collector:
    def __init__(self, server: SequencerServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        from chronoid.errors import ChronoidError
        from chronoid.sequencer.health import readiness
        from chronoid.sequencer.sequences import SequenceStats

        server = self.server
        dispatcher = server.dispatcher
        elector = server.elector
        sequences = server.gate.serving()
        # With failover each term has its own counters (a reset, as Prometheus expects).
        stats = sequences.stats if sequences is not None else SequenceStats()
        yield InfoMetricFamily(
            "chronoid_build",
            "The running chronoid's version",
            value={"version": package_version(), "python": sys.version.split()[0]},
        )
        requests = CounterMetricFamily(
            f"{_P}requests", "Commands answered, by command", labels=["command"]
        )
        for name, count in sorted(dispatcher.requests.items()):
            requests.add_metric([name], count)
        yield requests
        yield CounterMetricFamily(
            f"{_P}values_issued", "Sequence values handed out", stats.values_issued
        )
        yield GaugeMetricFamily(
            f"{_P}active_connections", "Open client connections", len(server.connections)
        )
        refused = CounterMetricFamily(
            "chronoid_connections_refused",
            "Connections the server refused or closed on its own, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(server.refusals.items()):
            refused.add_metric([reason], count)
        yield refused
        yield CounterMetricFamily(
            "chronoid_auth_failures", "Wrong passwords received", dispatcher.auth_failures
        )
        yield CounterMetricFamily(
            f"{_P}reservations", "Durable watermark writes", stats.reservations
        )
        yield CounterMetricFamily(
            f"{_P}reservation_seconds",
            "Time spent in watermark writes (s)",
            stats.reservation_seconds,
        )
        yield CounterMetricFamily(
            f"{_P}reservation_errors", "Watermark writes that failed", stats.reservation_errors
        )
        yield CounterMetricFamily(f"{_P}error_replies", "Error replies sent", dispatcher.errors)
        buckets, total_s = stats.watermark_write_seconds.cumulative()
        yield HistogramMetricFamily(
            f"{_P}watermark_write_seconds",
            "Latency of durable watermark writes (s): fsync, or the store's round trip",
            buckets=buckets,
            sum_value=total_s,
        )
        next_value = GaugeMetricFamily(
            f"{_P}sequence_next", "The value the next GETSEQ returns", labels=["sequence"]
        )
        block = GaugeMetricFamily(
            f"{_P}sequence_block", "Current reservation block (values)", labels=["sequence"]
        )
        if sequences is not None:
            for name in sequences.names():
                with contextlib.suppress(ChronoidError):  # exhausted: no next value to show
                    next_value.add_metric([name], sequences.current(name))
                block.add_metric([name], sequences.block(name))
        yield next_value
        yield block
        ready, _ = readiness(server)
        yield GaugeMetricFamily(f"{_P}ready", "1 while /readyz answers 200", int(ready))
        if elector is not None:
            yield GaugeMetricFamily(
                f"{_P}leader",
                "1 while this member leads and may issue, else 0",
                int(sequences is not None),
            )
            yield GaugeMetricFamily(
                f"{_P}term",
                "Fencing token of the term this member leads (0 while standing by)",
                elector.term or 0,
            )
            yield CounterMetricFamily(
                f"{_P}step_downs",
                "Terms this member ended (lease lost, store failure)",
                elector.step_downs,
            )
            yield GaugeMetricFamily(
                f"{_P}store_data_lost",
                "1 while this member holds a term but refuses to issue: the store lost its data",
                int(elector.data_lost is not None),
            )


def make_registry(server: SequencerServer) -> Any:
    """A Prometheus registry holding ``server``'s collector (one per server, so two servers in
    one process do not mix). Needs prometheus-client (``ImportError`` without it)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(server))
    return registry


def render(registry: Any) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``registry`` and its content type."""
    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return generate_latest(registry), CONTENT_TYPE_LATEST
