"""A ``default=`` for ORM columns and model fields that stays unique in forked web workers.

``default=gen.next_id`` breaks twice: Django's ``makemigrations`` writes the bound method as
``Generator.next_id``, which fails to load, and a generator created before gunicorn or uWSGI
forks its workers is inherited by all of them with one node, so every worker would repeat the
others' IDs (chronoid raises ``GeneratorForked`` instead). :class:`IdDefault` is a plain
module-level callable with simple arguments: migrations write it as
``chronoid.integrations.defaults.IdDefault('chrono64s', registry=...)``, and it builds its
generator lazily in each process that calls it, after any fork:

* ``registry="redis://..."`` (or ``etcd://``, ``postgresql://``, or the environment variable
  ``CHRONOID_REGISTRY_URL`` when neither argument is given): each process leases its own node
  (Mode C), so any number of workers on any number of hosts never repeat an ID;
* ``node=N``: one process owns node N; a forked child that calls it raises ``GeneratorForked``
  rather than share the node.

Standard library only: the SQLAlchemy and Django integrations use it, and so can anything
that takes a zero-argument callable.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from chronoid.errors import GeneratorForked, InvalidArgument
from chronoid.layout import Layout
from chronoid.redact import redact_dsn
from chronoid.variants import VariantName, get_layout

__all__ = ["REGISTRY_ENV", "IdDefault"]

REGISTRY_ENV = "CHRONOID_REGISTRY_URL"
"""Environment variable read for the registry URL when neither ``registry`` nor ``node`` is given
(keeps a password out of migration files and source code)."""


class _NextId:
    """What a default calls: ``next_id()`` of a generator or a Mode C lease generator."""

    def __init__(self, generator: Any) -> None:
        self.next_id = generator.next_id
        self.close = getattr(generator, "close", None)


class IdDefault:
    """A zero-argument callable returning a new ID of ``variant``, safe across ``os.fork()``.

    Args:
        variant: a variant name; must be signed to go in a signed SQL column (the column type
            checks that).
        registry: a node registry URL (Mode C); default: ``$CHRONOID_REGISTRY_URL``.
        node: a fixed node for a single process instead of a registry.

    Raises:
        UnknownVariant: a bad variant (at construction). InvalidArgument: both ``registry`` and
        ``node``, or neither and no ``$CHRONOID_REGISTRY_URL`` (on the first call).
        InvalidNode: a fixed ``node`` the layout's node field cannot hold.
        GeneratorForked: a fixed-``node`` default called in a process forked after it was
        first used.
    """

    def __init__(
        self, variant: VariantName | Layout, *, registry: str | None = None, node: int | None = None
    ) -> None:
        self.layout = get_layout(variant)
        self.variant = variant
        if registry is not None and node is not None:
            raise InvalidArgument("give a registry URL or a fixed node, not both")
        if registry is not None and not isinstance(registry, str):
            raise InvalidArgument(f"registry must be a URL string, got {type(registry).__name__}")
        if node is not None:
            self.layout.check_node(node)
        self.registry = registry
        self.node = node
        self._lock = threading.Lock()
        self._pid = 0
        self._owner_pid = 0  # the process a fixed-node generator belongs to
        self._source: _NextId | None = None

    def __call__(self) -> int:
        source = self._source
        if source is None or self._pid != os.getpid():
            source = self._open()
        return int(source.next_id())

    def _open(self) -> _NextId:
        with self._lock:
            pid = os.getpid()
            if self._source is not None and self._pid == pid:
                return self._source
            if self.node is not None:
                if self._owner_pid and self._owner_pid != pid:
                    raise GeneratorForked(
                        f"IdDefault({self.layout.name!r}, node={self.node}) belongs to process "
                        f"{self._owner_pid}; a forked worker would repeat its IDs. Give each "
                        "worker its own node, or use registry= (Mode C)"
                    )
                from chronoid.generator import Generator

                self._owner_pid = pid
                source = _NextId(Generator(self.layout, self.node))
            else:
                url = self.registry if self.registry is not None else os.environ.get(REGISTRY_ENV)
                if not url:
                    raise InvalidArgument(
                        f"IdDefault({self.layout.name!r}) needs registry=URL, node=N or "
                        f"${REGISTRY_ENV} (e.g. redis://127.0.0.1:6379/0)"
                    )
                from chronoid.lease.url import parse_registry_url
                from chronoid.modes.lease import LeaseGenerator

                # A forked child must not touch the parent's connection or lease: it leases
                # its own node through a registry client of its own.
                source = _NextId(LeaseGenerator(self.layout, parse_registry_url(url)))
            self._source, self._pid = source, pid
            return source

    def close(self) -> None:
        """Release this process's lease (Mode C); the next call leases again."""
        with self._lock:
            source, self._source = self._source, None
            if source is not None and source.close is not None and self._pid == os.getpid():
                source.close()

    # -- what migrations, pickling and comparisons need ----------------------------------

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """Path and arguments to rebuild this default (what Django's migration writer calls)."""
        kwargs: dict[str, Any] = {}
        if self.registry is not None:
            kwargs["registry"] = self.registry
        if self.node is not None:
            kwargs["node"] = self.node
        variant = self.variant if isinstance(self.variant, str) else self.layout.name
        return (f"{__name__}.IdDefault", (variant,), kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        _, args, kwargs = self.deconstruct()
        return (_rebuild, (args, kwargs))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdDefault):
            return NotImplemented
        return self.deconstruct() == other.deconstruct()

    def __hash__(self) -> int:
        return hash((self.layout.name, self.registry, self.node))

    def __repr__(self) -> str:
        extra = f", registry={redact_dsn(self.registry)!r}" if self.registry is not None else ""
        extra += f", node={self.node}" if self.node is not None else ""
        return f"IdDefault({self.layout.name!r}{extra})"


def _rebuild(args: tuple[Any, ...], kwargs: dict[str, Any]) -> IdDefault:
    return IdDefault(*args, **kwargs)
