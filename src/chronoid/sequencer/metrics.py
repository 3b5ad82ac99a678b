"""Prometheus metrics for the sequencer, read from its counters at scrape time.

The request path only bumps plain integers (no Prometheus call per request); a custom
collector turns them into metrics when ``/metrics`` is scraped. Needs the ``server`` extra
(prometheus-client); imported only when ``--metrics-port`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily

from chronoid.errors import ServerStartError
from chronoid.sequencer.sequences import SequenceStats
from chronoid.sequencer.server import SequencerServer

__all__ = ["bind_metrics", "serve_metrics"]


class _Collector:
    def __init__(self, server: SequencerServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        server = self.server
        dispatcher = server.dispatcher
        elector = server.elector
        sequences = elector.serving() if elector is not None else server.sequences
        # With failover each term has its own counters (a reset, as Prometheus expects).
        stats = sequences.stats if sequences is not None else SequenceStats()
        requests = CounterMetricFamily(
            "chronoid_sequencer_requests", "Commands answered, by command", labels=["command"]
        )
        for name, count in sorted(dispatcher.requests.items()):
            requests.add_metric([name], count)
        yield requests
        yield CounterMetricFamily(
            "chronoid_sequencer_values_issued", "Sequence values handed out", stats.values_issued
        )
        yield GaugeMetricFamily(
            "chronoid_sequencer_active_connections",
            "Open client connections",
            len(server.connections),
        )
        yield CounterMetricFamily(
            "chronoid_sequencer_reservations", "Durable watermark writes", stats.reservations
        )
        yield CounterMetricFamily(
            "chronoid_sequencer_reservation_seconds",
            "Time spent in watermark writes (s)",
            stats.reservation_seconds,
        )
        yield CounterMetricFamily(
            "chronoid_sequencer_reservation_errors",
            "Watermark writes that failed",
            stats.reservation_errors,
        )
        yield CounterMetricFamily(
            "chronoid_sequencer_error_replies", "Error replies sent", dispatcher.errors
        )
        yield CounterMetricFamily(
            "chronoid_sequencer_rejected_connections",
            "Connections refused above --max-connections",
            server.refused,
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
        if elector is not None:
            yield GaugeMetricFamily(
                "chronoid_sequencer_leader",
                "1 while this member leads and may issue, else 0",
                int(sequences is not None),
            )
            yield CounterMetricFamily(
                "chronoid_sequencer_step_downs",
                "Terms this member ended (lease lost, store failure)",
                elector.step_downs,
            )


def bind_metrics(port: int, host: str = "127.0.0.1") -> Callable[[SequencerServer], None]:
    """Bind ``http://host:port/metrics`` now (a daemon thread); :class:`ServerStartError` if
    the port cannot be bound. Returns the call that attaches a server's counters once it
    exists, so a port in use is found before anything else starts."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise ServerStartError(
            f"cannot serve metrics on {host}:{port} (--metrics-port): {exc.strerror}"
        ) from None

    def attach(server: SequencerServer) -> None:
        REGISTRY.register(_Collector(server))

    return attach


def serve_metrics(server: SequencerServer, port: int, host: str = "127.0.0.1") -> None:
    """Expose ``server``'s counters at ``http://host:port/metrics`` (a daemon thread)."""
    bind_metrics(port, host)(server)
