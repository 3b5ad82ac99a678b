"""Leases: one holder of a slot (a Mode C node, a sequencer cluster's leadership) at a time.

The guarantee and its rules are written once, in ``docs/leases.md``. This package holds the
lease value and the store protocols (:mod:`~chronoid.lease.base`), the holder's side of a
lease, its deadline and renewal schedule (:mod:`~chronoid.lease.keeper`), one module per store
(memory, Redis, etcd, PostgreSQL) and the one URL parser that opens them
(:mod:`~chronoid.lease.url`).
"""

from chronoid.lease.base import Lease, NodeRegistry
from chronoid.lease.url import SCHEMES, parse_registry_url

__all__ = ["SCHEMES", "Lease", "NodeRegistry", "parse_registry_url"]
