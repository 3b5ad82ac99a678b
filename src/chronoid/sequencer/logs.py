"""Log lines an operator can read and a log pipeline can parse: text, logfmt or JSON.

Every line carries an *event* name (``leader_elected``, ``reservation_failed``), stable across
releases so alerts can match it, and, where they apply, the ``sequence``, the ``member`` and the
``term``. Code logs with ``extra=event("name", sequence=...)``; the member and the current term
come from a :class:`LogContext` filter, so every line of a ``--ha`` member carries them without
each call passing them. A record without an event (a library's) gets one derived from its
message template, so no line goes without.

logfmt follows the common reading of the format (go-logfmt, Heroku): ``key=value`` pairs
separated by spaces; a value is double-quoted when it is empty or holds a space, ``=``, ``"``,
a backslash or a control character, with ``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t`` and
``\\u00XX`` escapes inside the quotes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "LogContext",
    "LogfmtFormatter",
    "TextFormatter",
    "configure",
    "event",
    "logfmt_value",
    "structured",
]

FORMATS = ("text", "logfmt", "json")
"""The values of ``--log-format``."""

_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
"""Attributes every LogRecord has: anything else on a record came from ``extra=``."""
_FIRST = ("sequence", "member", "term")
_PLACEHOLDER = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrifgexXoc%]")
_WORD = re.compile(r"[a-z0-9]+")


def event(name: str, **fields: object) -> dict[str, object]:
    """The ``extra=`` of a log call: its event name and fields (``sequence``, ``term``...)."""
    return {"event": name, **fields}


class LogContext(logging.Filter):
    """Adds what is true of every line of this process: the ``--ha`` member's name and the
    term it leads (``term()`` returns None while it does not lead). A field the call passed
    itself is kept."""

    def __init__(self, member: str | None = None, term: Callable[[], int | None] | None = None):
        super().__init__()
        self.member = member
        self.term = term

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if self.member is not None and "member" not in fields:
            fields["member"] = self.member
        if self.term is not None and "term" not in fields:
            term = self.term()
            if term is not None:
                fields["term"] = term
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """``event``, ``msg``, then the extra fields (the well-known ones first), then the error."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k != "event"}
    ordered: dict[str, object] = {
        "event": record.__dict__.get("event") or _derived_event(record),
        "msg": record.getMessage(),
    }
    for key in _FIRST:
        if key in extra and extra[key] is not None:
            ordered[key] = extra.pop(key)
    for key in sorted(extra):
        if extra[key] is not None:
            ordered[key] = extra[key]
    if record.exc_info and record.exc_info[0] is not None:
        ordered["error"] = logging.Formatter().formatException(record.exc_info)
    return ordered


def _derived_event(record: logging.LogRecord) -> str:
    """An event name for a record logged without one: the template's first words."""
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    head = _PLACEHOLDER.sub(" ", template).split(":", 1)[0].lower()
    words = _WORD.findall(head)[:4]
    return "_".join(words) or "log"


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-12-01T20:03:34.115Z``."""
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def logfmt_value(value: object) -> str:
    """``value`` as one logfmt value, quoted and escaped when it must be."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = value if isinstance(value, str) else str(value)
    if text and all(c > " " and c not in '="\\' and c.isprintable() for c in text):
        return text
    out = []
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif not c.isprintable() and c != " ":
            code = ord(c)
            if code > 0xFFFF:  # as JSON does: a UTF-16 surrogate pair
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info event=... msg="..." sequence=... member=... term=...``"""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, object]] = [
            ("ts", _timestamp(record)),
            ("level", record.levelname.lower()),
            ("logger", record.name),
            *_fields(record).items(),
        ]
        return " ".join(f"{_key(k)}={logfmt_value(v)}" for k, v in pairs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the same fields as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            **_fields(record),
        }
        return json.dumps(document, default=str, separators=(",", ":"))  # ASCII: always valid


class TextFormatter(logging.Formatter):
    """For people: ``<ts> <LEVEL> <event>: <message> [key=value ...]`` (one line)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        name = fields.pop("event")
        message = str(fields.pop("msg")).replace("\r", "\\r").replace("\n", "\\n")
        error = fields.pop("error", None)
        tail = " ".join(f"{_key(k)}={logfmt_value(v)}" for k, v in fields.items())
        line = f"{_timestamp(record)} {record.levelname:<7} {name}: {message}"
        if tail:
            line += f" [{tail}]"
        if error is not None:
            line += " " + logfmt_value(error)
        return line


_FORMATTERS: dict[str, type[logging.Formatter]] = {
    "text": TextFormatter,
    "logfmt": LogfmtFormatter,
    "json": JsonFormatter,
}


def configure(
    level: str,
    log_format: str,
    context: LogContext | None = None,
    stream: TextIO | None = None,
) -> LogContext:
    """Send every log line to ``stream`` (stderr) in ``log_format``; returns the context
    filter so the caller can fill in the member and the term once they are known."""
    if log_format not in _FORMATTERS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    context = context or LogContext()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_FORMATTERS[log_format]())
    handler.addFilter(context)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Warnings and a thread's uncaught exception would go to stderr raw: a line a log
    # pipeline cannot parse. Send them through the same formatter.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    global _structured
    _structured = log_format != "text"
    return context


_structured = False


def structured() -> bool:
    """Whether :func:`configure` chose logfmt or JSON (a fatal error must then be a log line
    too, not a bare ``chronoid: error:`` line)."""
    return _structured


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("chronoid").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra=event("thread_crashed"),
    )
