"""Optional dependencies: one check, one message, for every feature that needs an extra.

``pip install chronoid`` brings no dependency at all (the ID core is standard library only);
each server-facing feature lives behind an extra (``chronoid[redis]``, ``[postgres]``, ...).
Calling :func:`require_extra` where such a feature starts turns a missing package into one
line that says what to install, instead of a ``ModuleNotFoundError`` traceback from deep inside.
"""

from __future__ import annotations

import importlib

from chronoid.errors import MissingExtra

__all__ = ["require_extra"]


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Import ``modules`` (top-level names) or raise :class:`MissingExtra` naming ``extra``.

    Args:
        extra: the name in ``pip install 'chronoid[EXTRA]'``.
        feature: what the user asked for, as they would say it (``"chronoid pg install"``).
        modules: the importable names the feature needs (``"psycopg"``, ``"etcd3gw"``).

    Raises:
        MissingExtra: a module is not installed, or is installed but fails to import (psycopg
            without a libpq, for instance): the message carries the import's own reason then.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing = isinstance(exc, ModuleNotFoundError) and exc.name == module
            reason = f"{module} is not installed" if missing else f"{module} fails to import: {exc}"
            raise MissingExtra(
                f"{feature} needs the {extra!r} extra ({reason}): pip install 'chronoid[{extra}]'",
                name=module,
            ) from None
