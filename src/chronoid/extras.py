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

# What fixes a module that is installed but does not import (the extra alone would not).
_BROKEN_HINTS = {
    "psycopg": "pip install 'psycopg[binary]' (or psycopg[c], or install a system libpq)",
}


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
            if isinstance(exc, ModuleNotFoundError) and exc.name == module:
                message = (
                    f"{feature} needs the {extra!r} extra ({module} is not installed): "
                    f"pip install 'chronoid[{extra}]'"
                )
            else:
                hint = _BROKEN_HINTS.get(module, f"pip install --force-reinstall {module}")
                message = f"{feature} needs {module}, which is installed but fails to import "
                message += f"({exc}): {hint}"
            raise MissingExtra(" ".join(message.split()), name=module) from None
