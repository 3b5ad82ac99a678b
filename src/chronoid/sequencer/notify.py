"""systemd's readiness protocol (``Type=notify``) without a dependency.

systemd passes ``$NOTIFY_SOCKET``, a unix datagram socket (a path, or ``@name`` in the abstract
namespace); the service sends ``READY=1`` there once it can do its job, ``STATUS=...`` lines for
``systemctl status`` and ``STOPPING=1`` when it begins to stop. Outside systemd the variable is
unset and every call does nothing. A failing send is logged, never raised: readiness reporting
must not take the service down.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from chronoid.sequencer.logs import event

__all__ = ["NOTIFY_SOCKET_ENV", "notify"]

log = logging.getLogger("chronoid.sequencer")

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


def notify(*states: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``states`` (``"READY=1"``, ``"STATUS=leader"``) to ``$NOTIFY_SOCKET``, one
    datagram; True when sent, False when there is no socket or sending failed."""
    environ = os.environ if environ is None else environ
    address = environ.get(NOTIFY_SOCKET_ENV)
    if not address:
        return False
    if address.startswith("@"):
        target = "\0" + address[1:]  # the abstract namespace
    elif address.startswith("/"):
        target = address
    else:
        log.warning(
            "ignoring $NOTIFY_SOCKET %r: not a unix socket path",
            address,
            extra=event("notify_failed"),
        )
        return False
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, target)
    except OSError as exc:
        log.warning(
            "could not notify systemd at %s: %s", address, exc, extra=event("notify_failed")
        )
        return False
    return True
