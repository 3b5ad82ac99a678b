"""Passwords out of connection strings before they reach an error message or a log line.

One helper for every DSN or URL chronoid echoes back (PostgreSQL installer and registry,
``serve --ha``, Redis registry and sink): a user who pastes ``postgresql://app:s3cret@db/x``
into a command must never find ``s3cret`` in the terminal, a log file or a bug report.
Pure standard library, so it works whatever extras are installed.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["MASK", "redact_dsn"]

MASK = "***"
"""What a password is replaced with."""

# scheme://user:password@host  (the password runs to the last '@' before the path)
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<pw>[^/?#\s]*)@")
# ?password=... or &password=... in a URI's query (libpq and redis-py both accept it)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|pass|pwd)=)(?P<pw>[^&#\s]*)", re.I)
# password=... in a libpq key/value string, bare or single-quoted (with \' escapes)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>(?:^|\s)password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s']\S*)", re.IGNORECASE
)


MIN_ECHOED_CHARS = 4
"""The shortest password (or part of one) masked wherever it appears in a message: shorter
ones would mask ordinary words, and are no secret."""


def _passwords_in(dsn: str) -> set[str]:
    """The passwords of ``dsn`` as a client may echo them out of the DSN's form: as written,
    percent-decoded, and each part after a raw ``@`` (libpq ends the password at the first
    ``@``, so the rest becomes part of the host name it names in its messages)."""
    written = [m["pw"] for m in _URL_USERINFO.finditer(dsn)]
    written += [m["pw"] for m in _QUERY_PASSWORD.finditer(dsn)]
    written += [m["pw"].strip("'") for m in _KEYWORD_PASSWORD.finditer(dsn)]
    found: set[str] = set()
    for password in written:
        found.update((password, unquote(password), *password.split("@")[1:]))
    return {p for p in found if len(p) >= MIN_ECHOED_CHARS}


def redact_dsn(text: object, *, dsn: str | None = None) -> str:
    """``text`` (a DSN, a URL, or a message containing some) with every password masked.

    Handles ``scheme://user:password@host`` (and ``scheme://:password@host``), ``?password=`` query
    parameters and libpq's ``password=...`` keyword form (bare or quoted). Anything that is not a
    str is rendered with ``str()`` first, so callers can pass whatever they were given. The rest
    of the string (user, host, port, database) stays, since that is what a reader needs to see
    where a connection went. With ``dsn`` (the connection string ``text`` is about), every
    password of it is also masked wherever it appears: a client library echoes a malformed
    one back outside any DSN form (libpq quotes an undecodable ``%zz`` token, and makes the
    part after a raw ``@`` a host name).
    """
    value = text if isinstance(text, str) else str(text)
    for password in sorted(_passwords_in(dsn or ""), key=len, reverse=True):
        value = value.replace(password, MASK)
    value = _URL_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", value)
    value = _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", value)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", value)
