"""Passwords out of connection strings before they reach an error message or a log line.

One helper for every DSN or URL chronoid echoes back (PostgreSQL installer and registry,
``serve --ha``, Redis registry and sink): a user who pastes ``postgresql://app:s3cret@db/x``
into a command must never find ``s3cret`` in the terminal, a log file or a bug report.
Pure standard library, so it works whatever extras are installed.
"""

from __future__ import annotations

import re

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


def redact_dsn(text: object) -> str:
    """``text`` (a DSN, a URL, or a message containing some) with every password masked.

    Handles ``scheme://user:password@host`` (and ``scheme://:password@host``), ``?password=`` query
    parameters and libpq's ``password=...`` keyword form (bare or quoted). Anything that is not a
    str is rendered with ``str()`` first, so callers can pass whatever they were given. The rest
    of the string (user, host, port, database) stays, since that is what a reader needs to see
    where a connection went.
    """
    value = text if isinstance(text, str) else str(text)
    value = _URL_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", value)
    value = _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", value)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", value)
