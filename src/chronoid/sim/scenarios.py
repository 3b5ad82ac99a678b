"""The scenarios of spec 002 §8, in report order: the registry ``chronoid sim`` runs.

Each scenario is a function ``(Context) -> ScenarioResult`` in the module of its area:
:mod:`~chronoid.sim.risk` (collision risk, Mode A, the mixer), :mod:`~chronoid.sim.mode_b`,
:mod:`~chronoid.sim.ordering` (order, ties, boundaries, epochs), :mod:`~chronoid.sim.routing`
(Mode C and shards), :mod:`~chronoid.sim.storage` (keys in B-trees) and
:mod:`~chronoid.sim.parity` (SQL against Python). Every figure in a result is measured in the
run; the spec's own numbers only appear inside the quoted ``claim``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chronoid.sim import mode_b, ordering, parity, risk, routing, storage
from chronoid.sim.model import Context, ScenarioResult

__all__ = ["SCENARIOS", "Scenario", "get_scenario"]

ScenarioFunc = Callable[[Context], ScenarioResult]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A registered scenario: its command-line name, a one-line summary and its function."""

    name: str
    summary: str
    run: ScenarioFunc


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "capacity",
        "safe capacity vs the birthday bound, per window/day/year (Graph A)",
        risk.capacity,
    ),
    Scenario("signed-risk", "signed vs unsigned duplicate risk (Scenario 9)", risk.signed_risk),
    Scenario(
        "mode-a-personas", "Mode A collision rate for k personas x m IDs", risk.mode_a_personas
    ),
    Scenario(
        "high-frequency-mode-a",
        "Mode A on ms/us variants: 2 to 2,000 personas",
        risk.high_frequency_mode_a,
    ),
    Scenario("divergence", "Weyl-Golden divergence after a collision, per width", risk.divergence),
    Scenario("perfect-storm", "10,000 generators sharing node and salt", risk.perfect_storm),
    Scenario(
        "clock-rollback", "WAIT/RAISE/HLC and Mode A re-roll under clock jumps", risk.clock_rollback
    ),
    Scenario(
        "mode-b-cycle", "Mode B cycle in one chrono32y year; monotonicity", mode_b.mode_b_cycle
    ),
    Scenario(
        "mode-b-shared-node",
        "two Mode B instances on one node: time to collide",
        mode_b.mode_b_shared_node,
    ),
    Scenario(
        "billion-ids", "1e9 Mode B IDs (1e8 unless --full), zero duplicates", mode_b.billion_ids
    ),
    Scenario("threads", "100 threads x 10,000 IDs on one generator", ordering.threads),
    Scenario(
        "base32-sort", "Crockford Base32 strings sort like the integers", ordering.base32_sort
    ),
    Scenario("compare-cost", "64-bit vs 128-bit key comparison cost", storage.compare_cost),
    Scenario(
        "sqlite-btree", "SQLite ingestion and index size by key type (B, C)", storage.sqlite_btree
    ),
    Scenario(
        "postgres-btree", "PostgreSQL ingestion and index size (B, C)", storage.postgres_btree
    ),
    Scenario("fk-density", "foreign-key bytes per row by key type (Graph D)", storage.fk_density),
    Scenario("chrono32h-tie", "first tie of chrono32h within an hour", ordering.chrono32h_tie),
    Scenario(
        "bit-shadowing", "chrono64s and chrono64ms mixed in one index", ordering.bit_shadowing
    ),
    Scenario(
        "causal-jitter", "cross-node causal inversion under clock skew", ordering.causal_jitter
    ),
    Scenario(
        "spin-wait", "Mode C: overflow waits for the next tick; shard isolation", routing.spin_wait
    ),
    Scenario(
        "strict-monotonic",
        "overflow: which modes keep the node and which keep the order (Scenario 24)",
        ordering.strict_monotonic,
    ),
    Scenario(
        "rotation-routing",
        "entropy rotation never moves Mode C's routing bits (Scenario 5)",
        routing.rotation_routing,
    ),
    Scenario("sql-parity", "SQL functions vs Python, bit for bit (Scenario 18)", parity.sql_parity),
    Scenario("avalanche", "bits changed by the mixer per flipped input bit", risk.avalanche),
    Scenario("epoch-bit", "re-epoching: where an epoch bit keeps the order", ordering.epoch_bit),
    Scenario("boundaries", "tick 0 / max tick of every variant, expiry", ordering.boundaries),
    Scenario("routing", "shard routing: bit shift vs dict lookup (Graph E)", routing.routing),
)
"""Every scenario, in report order (most valuable first)."""


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``.

    Raises:
        InvalidArgument: no such scenario (the message lists them).
    """
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    from chronoid.errors import InvalidArgument

    raise InvalidArgument(
        f"unknown scenario {name!r}; choose from: {', '.join(s.name for s in SCENARIOS)}"
    )
