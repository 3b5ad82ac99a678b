"""One parser for ``host:port`` endpoints: etcd's endpoint lists, advertised addresses.

IPv6 addresses go in brackets (``[::1]:2379``); messages say which item was wrong and what is
allowed. Pure standard library.
"""

from __future__ import annotations

from chronoid.errors import InvalidArgument

__all__ = [
    "ETCD_PORT",
    "check_address",
    "check_host_port",
    "format_host",
    "parse_endpoint",
    "parse_etcd_endpoints",
]

ETCD_PORT = 2379
"""etcd's client port, the default of an etcd endpoint without one."""


def check_host_port(host: object, port: object, where: str) -> tuple[str, int]:
    """``(host, port)`` if ``host`` is a host name or address and ``port`` an int in 1..65535.

    Raises:
        InvalidArgument: either is not, with ``where`` naming what was being read.
    """
    if not isinstance(host, str) or not host or any(c in host for c in "/@?# ,"):
        raise InvalidArgument(f"{where}: host must be a host name or IP address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidArgument(f"{where}: port must be an int in 1..65535, got {port!r}")
    return host, port


def parse_endpoint(item: str, *, default_port: int | None, what: str) -> tuple[str, int]:
    """``(host, port)`` from ``host[:port]`` (IPv6 as ``[address][:port]``).

    ``default_port`` is the port of an item without one (None: a port is required); ``what``
    names the item in messages ("etcd endpoint").

    Raises:
        InvalidArgument: a path or query, a bad bracket, a port that is not 1..65535, a missing
            required port or a bad host.
    """
    if any(c in item for c in "/?#"):
        raise InvalidArgument(
            f"{what} {item!r}: a path or query is not allowed; expected host:port"
        )
    if item.startswith("["):
        close = item.find("]")
        if close < 0:
            raise InvalidArgument(f"{what} {item!r}: IPv6 address without ']'")
        host, rest = item[1:close], item[close + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidArgument(f"{what} {item!r}: expected [address]:port")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = item.partition(":")
    if not port_text and default_port is None:
        raise InvalidArgument(f"{what} {item!r}: expected host:port with a port in 1..65535")
    if port_text and not port_text.isdigit():
        raise InvalidArgument(
            f"{what} {item!r}: port must be a number in 1..65535, got {port_text!r}"
        )
    port = int(port_text) if port_text else default_port
    return check_host_port(host, port, f"{what} {item!r}")


def check_address(address: str) -> str:
    """``address`` if it is ``host:port`` (a port in 1..65535, no spaces), else InvalidArgument:
    the address a failover member advertises to clients."""
    if not isinstance(address, str) or any(c.isspace() for c in address):
        raise InvalidArgument(f"address must be host:port without spaces, got {address!r}")
    parse_endpoint(address, default_port=None, what="address")
    return address


def parse_etcd_endpoints(text: str) -> list[tuple[str, int]]:
    """Endpoints from ``"etcd://h1:2379,h2:2380"`` or ``"h1:2379,h2:2380"``.

    A missing port is etcd's client port, 2379; IPv6 addresses go in brackets
    (``[::1]:2379``); an item may also carry ``http://`` as etcd's own ``--endpoints`` do.

    Raises:
        InvalidArgument: an empty list, an empty item, a bad port, a path, TLS (``https://``,
            not supported) or an endpoint listed twice.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"etcd endpoints are a str, got {type(text).__name__}")
    body = text.strip()
    if body[:7].lower() == "etcd://":
        body = body[7:]
    if not body:
        raise InvalidArgument(
            f"no etcd endpoint in {text!r}: expected etcd://host:port[,host:port...]"
        )
    endpoints: list[tuple[str, int]] = []
    for raw in body.split(","):
        item = raw.strip()
        if item[:8].lower() == "https://":
            raise InvalidArgument(f"etcd endpoint {item!r}: TLS (https) is not supported")
        if item[:7].lower() == "http://":
            item = item[7:]
        item = item.rstrip("/")
        if not item:
            raise InvalidArgument(f"empty etcd endpoint in {text!r} (two commas, or a last one)")
        endpoint = parse_endpoint(item, default_port=ETCD_PORT, what="etcd endpoint")
        if endpoint in endpoints:
            raise InvalidArgument(f"etcd endpoint {item!r} is listed twice in {text!r}")
        endpoints.append(endpoint)
    return endpoints


def format_host(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
