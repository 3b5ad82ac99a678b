"""ChronoID operating modes (spec 002 §3): A (persona), B (instance), C (leased node).

=====  ==========================  ============================================================
mode   class                       uniqueness
=====  ==========================  ============================================================
A      :class:`PersonaGenerator`   probabilistic: random persona per 60 s, birthday-bounded per
                                   window across the whole fleet (see :mod:`chronoid.capacity`)
B      :class:`InstanceGenerator`  exact inside one instance (monotonic counter, Weyl-stepped
                                   node); two instances that share a node collide eventually
C      :class:`LeaseGenerator`     exact across a fleet: the node is leased from a registry
                                   (Redis, etcd, PostgreSQL) and stays plain for shard routing
=====  ==========================  ============================================================

Registries are imported lazily (:func:`parse_registry_url`), so Mode A and B need no client
library.
"""

from chronoid.lease.url import parse_registry_url
from chronoid.modes.instance import InstanceGenerator, mode_b_id
from chronoid.modes.lease import Lease, LeaseGenerator, NodeRegistry
from chronoid.modes.persona import PersonaGenerator, check_mode_a_layout

__all__ = [
    "InstanceGenerator",
    "Lease",
    "LeaseGenerator",
    "NodeRegistry",
    "PersonaGenerator",
    "check_mode_a_layout",
    "mode_b_id",
    "parse_registry_url",
]
