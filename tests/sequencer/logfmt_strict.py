"""A small strict logfmt parser for the tests: it refuses what a lenient one would guess at.

Grammar (go-logfmt's): pairs ``key=value`` separated by one space; a key is
``[A-Za-z0-9_.-]+``; a value is either bare (no space, ``=``, ``"``, backslash or control
character, and not empty) or double-quoted with ``\\" \\\\ \\n \\r \\t \\uXXXX`` escapes and no
raw control characters. Keys must not repeat.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_BARE = re.compile(r'[^\s="\\\x00-\x1f\x7f]+')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


class LogfmtError(ValueError):
    """A line that is not strict logfmt."""


def parse(line: str) -> dict[str, str]:
    """The pairs of one logfmt line, in order."""
    pairs: dict[str, str] = {}
    i, n = 0, len(line)
    if not line:
        raise LogfmtError("empty line")
    while True:
        match = _KEY.match(line, i)
        if match is None:
            raise LogfmtError(f"expected a key at {i}: {line!r}")
        key, i = match.group(), match.end()
        if i >= n or line[i] != "=":
            raise LogfmtError(f"key {key!r} without '=' at {i}: {line!r}")
        i += 1
        if i < n and line[i] == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise LogfmtError(f"unterminated quoted value of {key!r}: {line!r}")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    escape = line[i + 1 : i + 2]
                    if escape in _SIMPLE_ESCAPES:
                        out.append(_SIMPLE_ESCAPES[escape])
                        i += 2
                    elif escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", line[i + 2 : i + 6]):
                        out.append(chr(int(line[i + 2 : i + 6], 16)))
                        i += 6
                    else:
                        raise LogfmtError(f"bad escape {line[i : i + 2]!r} in {key!r}: {line!r}")
                elif c < " " or c == "\x7f":
                    raise LogfmtError(f"raw control character in {key!r}: {line!r}")
                else:
                    out.append(c)
                    i += 1
            # \uXXXX pairs are UTF-16 surrogates (as in JSON): join them.
            value = "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")
        else:
            match = _BARE.match(line, i)
            if match is None:
                raise LogfmtError(f"empty or malformed bare value of {key!r}: {line!r}")
            value, i = match.group(), match.end()
        if key in pairs:
            raise LogfmtError(f"key {key!r} repeated: {line!r}")
        pairs[key] = value
        if i == n:
            return pairs
        if line[i] != " " or i + 1 >= n or line[i + 1] == " ":
            raise LogfmtError(f"expected one space between pairs at {i}: {line!r}")
        i += 1
