"""Settings from flags, the environment and a TOML file: precedence, checks, masking.

The unit tests build small parsers (a flag added after the fact must be configurable with no
other change); the subprocess tests run ``chronoid serve`` itself.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from chronoid.cli import build_parser
from chronoid.errors import ConfigError
from chronoid.sequencer.config import (
    MASK,
    UNSET,
    format_effective,
    make_configurable,
    resolve,
)
from tests.sequencer.conftest import SERVE, ServerProcess, exchange
from tests.support import free_port


def _parser(*more: tuple[str, dict[str, object]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    parser.add_argument("--port", type=int, default=10001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--force-initial", action="store_true")
    parser.add_argument("--event-loop", choices=("auto", "asyncio"), default="auto")
    parser.add_argument("--ha", default=None)
    for flag, options in more:
        parser.add_argument(flag, **options)  # type: ignore[arg-type]
    make_configurable(parser)
    return parser


def _resolve(
    parser: argparse.ArgumentParser,
    argv: list[str],
    env: dict[str, str] | None = None,
    toml: str | None = None,
    tmp_path: Path | None = None,
) -> argparse.Namespace:
    if toml is not None:
        assert tmp_path is not None
        path = tmp_path / "serve.toml"
        path.write_text(toml)
        argv = [*argv, "--config", str(path)]
    args = parser.parse_args(argv)
    resolve(args, env or {})
    return args


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    parser = _parser()
    toml = 'port = 1\nhost = "file-host"\nlease-ttl = 5\ndata_dir = "/from/file"\n'
    env = {"CHRONOID_PORT": "2", "CHRONOID_HOST": "env-host"}
    args = _resolve(parser, ["--port", "3"], env, toml, tmp_path)
    assert (args.port, args.host, args.lease_ttl, args.data_dir) == (
        3,
        "env-host",
        5.0,
        Path("/from/file"),
    )
    assert args.event_loop == "auto" and args.force_initial is False  # defaults
    # Without the flag, the environment wins; without either, the file.
    assert _resolve(parser, [], env, toml, tmp_path).port == 2
    assert _resolve(parser, [], {}, toml, tmp_path).port == 1
    assert _resolve(parser, [], {}, None).port == 10001
    # The config file itself may come from the environment.
    path = tmp_path / "serve.toml"
    args = parser.parse_args([])
    resolve(args, {"CHRONOID_CONFIG": str(path)})
    assert args.port == 1


def test_a_flag_added_later_is_configurable_with_no_other_change(tmp_path: Path) -> None:
    parser = _parser(
        ("--max-sequences", {"type": int, "default": 1000}),
        ("--handshake-timeout", {"type": float, "default": 5.0}),
    )
    args = _resolve(
        parser,
        [],
        {"CHRONOID_HANDSHAKE_TIMEOUT": "0.5"},
        "max-sequences = 7\n",
        tmp_path,
    )
    assert (args.max_sequences, args.handshake_timeout) == (7, 0.5)


def test_booleans_lists_and_choices(tmp_path: Path) -> None:
    parser = _parser(("--endpoint", {"action": "append", "default": None}))
    for word in ("1", "true", "YES", "on"):
        assert _resolve(parser, [], {"CHRONOID_FORCE_INITIAL": word}).force_initial is True
    assert _resolve(parser, [], {"CHRONOID_FORCE_INITIAL": "off"}).force_initial is False
    assert _resolve(parser, [], {}, "force-initial = true\n", tmp_path).force_initial is True
    args = _resolve(parser, [], {"CHRONOID_ENDPOINT": "a:1, b:2"})
    assert args.endpoint == ["a:1", "b:2"]
    args = _resolve(parser, [], {}, 'endpoint = ["c:3"]\n', tmp_path)
    assert args.endpoint == ["c:3"]
    assert _resolve(parser, [], {"CHRONOID_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({"CHRONOID_PORT": "ten"}, None, "port (from env CHRONOID_PORT): invalid int value 'ten'"),
        ({"CHRONOID_LEASE_TTL": "1s"}, None, "lease-ttl (from env CHRONOID_LEASE_TTL): invalid"),
        (
            {"CHRONOID_DATA_DIR": ""},
            None,
            "data-dir (from env CHRONOID_DATA_DIR): the value is empty",
        ),
        ({}, 'data-dir = " "\n', "data-dir (from file"),
        ({"CHRONOID_FORCE_INITIAL": "maybe"}, None, "force-initial (from env"),
        ({"CHRONOID_EVENT_LOOP": "tokio"}, None, "event-loop (from env CHRONOID_EVENT_LOOP): "),
        ({}, 'port = "10001"\n', "port (from file "),
        ({}, "port = true\n", "port (from file"),
        ({}, "host = 5\n", "host (from file"),
        ({}, "force-initial = 1\n", "force-initial (from file"),
        ({}, 'event-loop = "tokio"\n', "invalid choice 'tokio'"),
        ({}, "prot = 1\n", "unknown key 'prot'"),
        ({}, "[serve]\nport = 1\n", "unknown key 'serve'"),
        ({}, "port = 1\nport_ = 2\n", "unknown key 'port_'"),
        ({}, "data-dir = '/a'\ndata_dir = '/b'\n", "'data-dir' is given twice"),
        ({}, "port = \n", "is not valid TOML"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(
    env: dict[str, str], toml: str | None, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        _resolve(_parser(), [], env, toml, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    parser = _parser()
    args = parser.parse_args(["--config", str(tmp_path / "absent.toml")])
    with pytest.raises(ConfigError, match="cannot read config file .*absent.toml"):
        resolve(args, {})


def test_printed_settings_mask_secrets_and_read_back(tmp_path: Path) -> None:
    parser = _parser(("--auth-token", {"default": None}))
    env = {"CHRONOID_HA": "postgresql://chronoid:s3cr%40t@db:5432/seq", "CHRONOID_AUTH_TOKEN": "tk"}
    args = parser.parse_args(["--port", "7"])
    text = format_effective(resolve(args, env))
    assert "s3cr" not in text and "tk" not in text.replace("token", "")
    assert f"postgresql://chronoid:{MASK}@db:5432/seq" in text
    assert re.search(r"^port +?= 7  # flag$", text, re.M) and "# env CHRONOID_HA" in text
    # The output is a config file: reading it back gives the same (unmasked) values.
    path = tmp_path / "printed.toml"
    path.write_text(text)
    again = parser.parse_args(["--config", str(path)])
    resolve(again, {})
    assert (again.port, again.host, again.lease_ttl) == (7, "127.0.0.1", 3.0)


def test_unsupported_option_kinds_fail_at_definition() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--verbose", "-v", action="count", default=0)
    with pytest.raises(TypeError, match="--verbose: _CountAction"):
        make_configurable(parser)


def test_every_serve_flag_has_an_environment_variable_and_a_key() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = subparsers.choices["serve"]
    settings = serve.get_default("config_settings")
    flags = {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest not in ("help", "config", "print_config")
    }
    assert {s.flag for s in settings.settings} == flags
    envs = {s.env for s in settings.settings}
    assert {"CHRONOID_PORT", "CHRONOID_DATA_DIR", "CHRONOID_HA", "CHRONOID_LEASE_TTL"} <= envs
    # Nothing is left at the sentinel once resolved.
    args = parser.parse_args(["serve"])
    resolve(args, {})
    assert not [k for k, v in vars(args).items() if v is UNSET]


# -- chronoid serve itself -------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOID_")}
    env.update(extra)
    return env


def test_serve_takes_its_settings_from_all_three_places(tmp_path: Path) -> None:
    env_port, file_port, flag_metrics = free_port(), free_port(), free_port()
    data_dir = tmp_path / "from-file"
    config = tmp_path / "serve.toml"
    config.write_text(
        f'port = {file_port}\ndata-dir = "{data_dir}"\ninitial = 500\nmetrics-port = 1\n'
        'log-level = "warning"\n'
    )
    serve_args = ["--config", str(config)]
    command = [*SERVE, *serve_args]
    env = _env(CHRONOID_PORT=str(env_port))
    printed = subprocess.run(
        [*command, "--metrics-port", str(flag_metrics), "--print-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = {line.split("=")[0].strip(): line for line in printed.stdout.splitlines()}
    assert lines["port"].endswith("# env CHRONOID_PORT") and str(env_port) in lines["port"]
    assert re.fullmatch(rf"initial +?= 500  # file {re.escape(str(config))}", lines["initial"])
    assert lines["metrics-port"].endswith("# flag")
    assert lines["event-loop"].endswith("# default")
    srv = ServerProcess.start(
        [*serve_args, "--metrics-port", str(flag_metrics)],
        port=env_port,
        data_dir=data_dir,
        log_path=tmp_path / "serve.log",
        env=env,
    )
    try:
        assert exchange(env_port, b"GETSEQ\r\nQUIT\r\n") == b":500\r\n+OK\r\n"
        assert (data_dir / "sequencer.json").exists()
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{flag_metrics}/healthz", timeout=5) as r:
            assert r.status == 200
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        ({"CHRONOID_PORT": "99999"}, "", "port must be an int in 0..65535, got 99999"),
        ({"CHRONOID_MAX_CONNECTIONS": "many"}, "", "max-connections (from env"),
        ({}, "sites = 2\nsite = 2\n", "--site must be in 0..1"),
        ({}, "metrics_port = 'x'\n", "metrics-port (from file"),
        ({}, "colour = 'red'\n", "unknown key 'colour'"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(
    env: dict[str, str], toml: str, expected: str, tmp_path: Path
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(toml)
    done = subprocess.run(
        [sys.executable, "-m", "chronoid", "serve", "--config", str(config)],
        env=_env(CHRONOID_DATA_DIR=str(tmp_path / "d"), **env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert expected in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_print_config_reads_back_as_toml(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chronoid", "serve", "--print-config"],
        env=_env(CHRONOID_PASSWORD="hunter2", CHRONOID_HA="postgresql://a:hunter2@h/d"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "hunter2" not in done.stdout
    assert "# password = " in done.stdout
    document = tomllib.loads(done.stdout)
    assert document["ha"] == f"postgresql://a:{MASK}@h/d"
    assert document["port"] == 10001
