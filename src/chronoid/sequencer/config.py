"""Settings of a command from its flags, the environment and a TOML file, in that order.

Built over an ``argparse`` parser, not beside it: :func:`make_configurable` walks the
parser's options once, after every ``add_argument``, and derives for each one

* its TOML key: the long flag without the dashes (``--data-dir`` -> ``data-dir``; the
  spelling ``data_dir`` is accepted too),
* its environment variable: the prefix and the ``dest`` in capitals
  (``--data-dir`` -> ``CHRONOID_DATA_DIR``),

so a flag added later gets both without a line here. Precedence, highest first: the command
line, the environment, the file given by ``--config FILE`` (or ``$CHRONOID_CONFIG``), the
flag's default. Values from the environment and the file go through the flag's own ``type``
and ``choices``, so they are checked exactly as on the command line; a key the command does not
know, or a value of the wrong kind, is refused with one line naming the key and its source.
Environment variables that do not name a flag are ignored (other tools share the prefix).

Flags are told apart from defaults by a sentinel: :func:`make_configurable` replaces every
default with :data:`UNSET` (keeping the real one) so that :func:`resolve` sees what the
command line gave.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chronoid.errors import ConfigError
from chronoid.redact import MASK, redact_dsn

__all__ = [
    "CONFIG_ENV",
    "MASK",
    "UNSET",
    "Setting",
    "Settings",
    "make_configurable",
    "resolve",
]

CONFIG_ENV = "CHRONOID_CONFIG"
"""The environment variable naming the configuration file when ``--config`` is not given."""
_SECRET_WORDS = ("password", "secret", "token")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class _Unset:
    """The default of every configurable option: "not on the command line"."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class Setting:
    """One option as the environment and the file know it."""

    dest: str
    """The ``argparse`` destination (``data_dir``)."""
    flag: str
    """The long flag (``--data-dir``)."""
    key: str
    """The TOML key (``data-dir``)."""
    env: str
    """The environment variable (``CHRONOID_DATA_DIR``)."""
    default: object
    """The flag's real default."""
    secret: bool
    """Printed as :data:`MASK` (a password, a token)."""
    action: argparse.Action


@dataclass(frozen=True, slots=True)
class Effective:
    """A setting's value and where it came from."""

    setting: Setting
    value: object
    source: str
    """``flag``, ``env CHRONOID_X``, ``file PATH`` or ``default``."""


class Settings:
    """Every configurable option of one parser (made by :func:`make_configurable`)."""

    def __init__(self, settings: Sequence[Setting], env_prefix: str) -> None:
        self.settings = tuple(settings)
        self.env_prefix = env_prefix
        self.by_key: dict[str, Setting] = {}
        for setting in self.settings:
            self.by_key[setting.key] = setting
            self.by_key[setting.dest] = setting

    def keys(self) -> list[str]:
        """The TOML keys, in the order the flags were defined."""
        return [setting.key for setting in self.settings]


def make_configurable(
    parser: argparse.ArgumentParser,
    *,
    env_prefix: str = "CHRONOID_",
    secrets: Sequence[str] = (),
) -> Settings:
    """Give every option of ``parser`` an environment variable and a TOML key.

    Call it once, after the last ``add_argument``. It adds ``--config FILE`` and
    ``--print-config`` and stores the :class:`Settings` as the parser default
    ``config_settings``. ``secrets`` names extra destinations to mask; any destination with
    ``password``, ``secret`` or ``token`` in its name is masked anyway (``*_file`` ones are
    paths, not secrets), and a URL's password is masked wherever it appears.
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None,
        help=f'TOML file of settings, one key per flag (data-dir = "/var/lib/chronoid"); '
        f"also ${CONFIG_ENV}. Every flag can also be set as {env_prefix}<FLAG> "
        f"({env_prefix}DATA_DIR); precedence: flag, environment, file, default",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (secrets masked) with where each came from, "
        "as TOML, and exit",
    )
    settings: list[Setting] = []
    for action in parser._actions:
        if action.dest in ("help", "config", "print_config") or not action.option_strings:
            continue
        if isinstance(action, argparse._VersionAction | argparse._HelpAction):
            continue
        if not isinstance(
            action, argparse._StoreAction | argparse._StoreConstAction | argparse._AppendAction
        ):
            raise TypeError(
                f"{action.option_strings[0]}: {type(action).__name__} options cannot be "
                "configured from the environment or a file; use store, store_true or append"
            )
        long = next((o for o in action.option_strings if o.startswith("--")), None)
        if long is None:
            raise TypeError(f"{action.option_strings[0]} needs a --long name to be configurable")
        default = action.default
        if action.help and "%(default)" in action.help:
            # Help is formatted from action.default, which becomes the sentinel below.
            action.help = action.help.replace("%(default)s", str(default))
        secret = action.dest in secrets or (
            any(word in action.dest for word in _SECRET_WORDS) and not action.dest.endswith("_file")
        )
        settings.append(
            Setting(
                dest=action.dest,
                flag=long,
                key=long[2:],
                env=env_prefix + action.dest.upper(),
                default=default,
                secret=secret,
                action=action,
            )
        )
        action.default = UNSET
    result = Settings(settings, env_prefix)
    parser.set_defaults(config_settings=result)
    return result


def resolve(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
) -> list[Effective]:
    """Fill every option of ``args`` left :data:`UNSET` by the command line from the
    environment, then the configuration file, then its default; returns each value with its
    source. Raises :class:`ConfigError` naming the key for anything unknown or malformed.
    """
    settings: Settings = args.config_settings
    environ = os.environ if environ is None else environ
    config_path = args.config
    if config_path is None and environ.get(CONFIG_ENV):
        config_path = Path(environ[CONFIG_ENV])
    from_file = _read_file(config_path, settings) if config_path is not None else {}
    result: list[Effective] = []
    for setting in settings.settings:
        given = getattr(args, setting.dest, UNSET)
        if given is not UNSET:
            value, source = given, "flag"
        elif setting.env in environ:
            source = f"env {setting.env}"
            value = _from_text(setting, environ[setting.env], source)
        elif setting.key in from_file:
            source = f"file {config_path}"
            value = _from_toml(setting, from_file[setting.key], source)
        else:
            value, source = setting.default, "default"
        setattr(args, setting.dest, value)
        result.append(Effective(setting, value, source))
    return result


def format_effective(effective: Sequence[Effective]) -> str:
    """The settings as a TOML document that ``--config`` reads back (secrets masked), each
    line commented with its source; unset ones as comments."""
    lines = ["# effective settings (precedence: flag, environment, file, default)"]
    files = sorted({e.source[5:] for e in effective if e.source.startswith("file ")})
    if files:
        lines.append(f"# config file: {files[0]}")
    width = max((len(e.setting.key) for e in effective), default=0)
    for item in effective:
        key = item.setting.key.ljust(width)
        value = item.value
        if value is None or (isinstance(value, list) and not value):
            lines.append(f"# {key} = (not set)  # {item.source}")
            continue
        shown = _toml_value(MASK) if item.setting.secret else _toml_value(value)
        lines.append(f"{key} = {shown}  # {item.source}")
    return "\n".join(lines) + "\n"


# -- reading -------------------------------------------------------------------------------


def _read_file(path: Path, settings: Settings) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    result: dict[str, object] = {}
    for key, value in document.items():
        setting = settings.by_key.get(key)
        if setting is None:
            raise ConfigError(
                f"config file {path}: unknown key {key!r}; known keys: {', '.join(settings.keys())}"
            )
        if setting.key in result:
            raise ConfigError(
                f"config file {path}: {setting.key!r} is given twice (as {setting.key!r} and "
                f"{setting.dest!r})"
            )
        result[setting.key] = value
    return result


def _from_text(setting: Setting, text: str, source: str) -> object:
    """An environment value: parsed as the command line would parse it."""
    action = setting.action
    if isinstance(action, argparse._StoreConstAction):
        word = text.strip().lower()
        if word in _TRUE:
            return action.const
        if word in _FALSE:
            return setting.default
        raise ConfigError(
            f"{setting.key} (from {source}): expected one of 1/true/yes/on or 0/false/no/off, "
            f"got {text!r}"
        )
    if _is_list(action):
        return [_convert(setting, part.strip(), source) for part in text.split(",") if part.strip()]
    return _convert(setting, text, source)


def _from_toml(setting: Setting, value: object, source: str) -> object:
    """A file value: TOML's own types must match the flag's."""
    action = setting.action
    if isinstance(action, argparse._StoreConstAction):
        if not isinstance(value, bool):
            raise ConfigError(
                f"{setting.key} (from {source}): expected true or false, got {value!r}"
            )
        return action.const if value else setting.default
    if _is_list(action):
        if not isinstance(value, list):
            raise ConfigError(f"{setting.key} (from {source}): expected an array, got {value!r}")
        return [_toml_scalar(setting, item, source) for item in value]
    return _toml_scalar(setting, value, source)


def _toml_scalar(setting: Setting, value: object, source: str) -> object:
    kind = setting.action.type
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{setting.key} (from {source}): expected an integer, got {value!r}")
        return _check_choice(setting, value, source)
    if kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{setting.key} (from {source}): expected a number, got {value!r}")
        return _check_choice(setting, float(value), source)
    if not isinstance(value, str):
        raise ConfigError(f"{setting.key} (from {source}): expected a string, got {value!r}")
    return _convert(setting, value, source)


def _convert(setting: Setting, text: str, source: str) -> object:
    if not text.strip():
        # An empty Path is the current directory, an empty URL nonsense: never a default.
        hint = " (unset the variable to use the default)" if source.startswith("env") else ""
        raise ConfigError(f"{setting.key} (from {source}): the value is empty{hint}")
    kind = setting.action.type
    if kind is None:
        value: object = text
    else:
        assert callable(kind)
        try:
            value = kind(text)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            name = getattr(kind, "__name__", "value")
            detail = "" if isinstance(exc, ValueError) and name in ("int", "float") else f": {exc}"
            raise ConfigError(
                f"{setting.key} (from {source}): invalid {name} value {text!r}{detail}"
            ) from exc
    return _check_choice(setting, value, source)


def _check_choice(setting: Setting, value: object, source: str) -> object:
    choices = setting.action.choices
    if choices is not None and value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise ConfigError(
            f"{setting.key} (from {source}): invalid choice {value!r} (choose from {allowed})"
        )
    return value


def _is_list(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")


# -- printing ------------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return _toml_string(redact_dsn(str(value)))


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
