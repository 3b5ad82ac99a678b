"""The network between the client processes and the servers, which the nemesis can cut.

Two ways, one interface (:class:`ClientNetwork`):

``netns``  as root: the clients run in a network namespace of the run's own (``ip netns``),
           joined to the host by a veth pair; the servers listen on the host end's address.
           A cut sets the host end down: packets are dropped both ways, so established
           connections hear nothing (as behind a dead link) and new ones time out; a heal sets
           it up again and TCP carries on. The namespace is deleted at the end (and by a later
           run's sweep if the tool was killed, :func:`~chronoid.torture.processes.sweep_stale`).
``relay``  otherwise (not root, ``ip netns`` failed, or an attached deployment the tool does
           not start): one :class:`~chronoid.torture.relay.Relay` per server on loopback.

The verdict's meta record says which was used (``client_network``).
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Sequence

from chronoid.torture.processes import Supervisor, is_root
from chronoid.torture.relay import Relay

__all__ = ["ClientNetwork", "NetnsNetwork", "RelayNetwork", "client_network"]


class ClientNetwork:
    """Where the clients run and what they dial; :meth:`cut` and :meth:`heal` partition them
    from every server at once."""

    kind = "none"
    server_host = "127.0.0.1"
    """The address servers the tool starts must listen on."""
    client_host = "127.0.0.1"
    """The address clients dial."""

    def client_port(self, server_port: int) -> int:
        """The port clients dial to reach ``server_port``."""
        return server_port

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run as a client (inside the namespace, for ``netns``)."""
        return argv

    def cut(self) -> None:
        """Partition the clients from the servers."""

    def heal(self) -> None:
        """Connect them again."""

    def close(self) -> None:
        """Undo what :meth:`cut` did (the supervisor removes the rest)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def _addresses() -> set[str]:
    """IPv4 addresses of the host's interfaces (``ip -o -4 addr``)."""
    done = subprocess.run(
        ["ip", "-o", "-4", "addr"], capture_output=True, text=True, timeout=30, check=False
    )
    found = set()
    for line in done.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            found.add(fields[fields.index("inet") + 1].split("/")[0])
    return found


class NetnsNetwork(ClientNetwork):
    """The clients in a network namespace of their own, joined to the host by a veth pair."""

    kind = "netns"

    def __init__(self, supervisor: Supervisor) -> None:
        self.name = supervisor.netns()
        # A /30 of 10.213.0.0/16 per run, one no other interface uses.
        used = _addresses()
        rng = random.Random()
        base = rng.randrange(0, 65_536, 4)
        while f"10.213.{base // 256}.{base % 256 + 1}" in used:
            base = rng.randrange(0, 65_536, 4)
        prefix = f"10.213.{base // 256}."
        self.server_host = f"{prefix}{base % 256 + 1}"
        self.client_host = self.server_host
        self._client_address = f"{prefix}{base % 256 + 2}"
        pid, number = self.name.split("-")[1:3]
        self.host_end = f"cth{pid[-8:]}{number}"  # interface names: 15 characters at most
        self.netns_end = f"ctn{pid[-8:]}{number}"
        _ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.netns_end)
        try:
            _ip("link", "set", self.netns_end, "netns", self.name)
            _ip("addr", "add", f"{self.server_host}/30", "dev", self.host_end)
            _ip("link", "set", self.host_end, "up")
            _ip("-n", self.name, "addr", "add", f"{self._client_address}/30", "dev", self.netns_end)
            _ip("-n", self.name, "link", "set", self.netns_end, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except OSError:
            subprocess.run(
                ["ip", "link", "delete", self.host_end], capture_output=True, check=False
            )
            raise

    def wrap(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        _ip("link", "set", self.host_end, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_end, "up")

    def close(self) -> None:
        subprocess.run(["ip", "link", "delete", self.host_end], capture_output=True, check=False)


class RelayNetwork(ClientNetwork):
    """One relay per server on loopback; clients dial the relays."""

    kind = "relay"

    def __init__(self, relays: Sequence[Relay]) -> None:
        self.relays = {relay.target_port: relay for relay in relays}

    def client_port(self, server_port: int) -> int:
        return self.relays[server_port].port

    def cut(self) -> None:
        for relay in self.relays.values():
            relay.cut()

    def heal(self) -> None:
        for relay in self.relays.values():
            relay.heal()


def client_network(
    supervisor: Supervisor, make_relays: Callable[[], Sequence[Relay]], *, prefer_netns: bool
) -> tuple[ClientNetwork, str]:
    """The network of the clients, and a note for the verdict on why it is the one used.

    ``make_relays`` makes the relays used when no namespace is made.
    """
    why = "not root" if not is_root() else "attached deployment"
    if prefer_netns and is_root():
        try:
            return NetnsNetwork(supervisor), "netns (ip netns + veth)"
        except OSError as exc:
            why = f"ip netns failed: {exc}"
    return RelayNetwork(make_relays()), f"relay ({why})"
