"""Passwords never reach a message: the helper, and every command that echoes a DSN or URL."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chronoid.redact import MASK, redact_dsn

SECRET = "s3cretpw"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (
            f"postgresql://u:{SECRET}@db.example:5432/app",
            f"postgresql://u:{MASK}@db.example:5432/app",
        ),
        (f"postgres://:{SECRET}@h/x", f"postgres://:{MASK}@h/x"),
        (f"redis://default:{SECRET}@127.0.0.1:6379/0", f"redis://default:{MASK}@127.0.0.1:6379/0"),
        (f"rediss://u:p@ss:{SECRET}@h:1/0", f"rediss://u:{MASK}@h:1/0"),  # an unescaped '@'
        (
            f"postgresql://u@h/x?sslmode=require&password={SECRET}",
            f"postgresql://u@h/x?sslmode=require&password={MASK}",
        ),
        (f"host=h user=u password={SECRET} dbname=x", f"host=h user=u password={MASK} dbname=x"),
        (
            f"host=h password = '{SECRET} with \\' quote' dbname=x",
            f"host=h password = {MASK} dbname=x",
        ),
        (f"PASSWORD={SECRET}", f"PASSWORD={MASK}"),
        (
            f"cannot connect with 'postgresql://u:{SECRET}@h/x': refused",
            f"cannot connect with 'postgresql://u:{MASK}@h/x': refused",
        ),
        ("postgresql://u@h:5432/x", "postgresql://u@h:5432/x"),
        ("host=h user=u dbname=x", "host=h user=u dbname=x"),
        ("http://h:8080/path", "http://h:8080/path"),  # a port is not a password
        ("", ""),
    ],
)
def test_redact_dsn(given: str, shown: str) -> None:
    assert redact_dsn(given) == shown
    assert SECRET not in redact_dsn(given)


def test_redact_dsn_takes_anything() -> None:
    assert redact_dsn(None) == "None"
    assert redact_dsn(b"x") == "b'x'"


@pytest.mark.parametrize(
    "args",
    [
        # nothing listens on port 1: each command fails, and says where it tried to go
        ("pg", "install", "--dsn", f"postgresql://u:{SECRET}@127.0.0.1:1/x"),
        ("pg", "uninstall", "--dsn", f"host=127.0.0.1 port=1 user=u password={SECRET}"),
        (
            "new",
            "--variant",
            "chrono64s",
            "--mode",
            "c",
            "--registry",
            f"redis://u:{SECRET}@127.0.0.1:1/0",
        ),
        ("new", "--variant", "chrono64s", "--mode", "c", "--registry", f"bogus://u:{SECRET}@h/0"),
        ("serve", "--ha", f"mysql://u:{SECRET}@127.0.0.1:1/x"),
        ("stream", "--freq", "second", "--sink", f"redis://u:{SECRET}@127.0.0.1:1/0?stream=x"),
    ],
    ids=[
        "pg-install-url",
        "pg-uninstall-keywords",
        "registry-redis",
        "registry-unknown",
        "serve-ha",
        "stream-redis-sink",
    ],
)
def test_commands_never_echo_a_password(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    # in-process (the CLI's own subprocess tests cover the entry points): quick
    from chronoid.cli import main

    assert main(list(args)) != 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "chronoid: error:" in out.err


def test_pg_install_as_a_process() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chronoid",
            "pg",
            "install",
            "--dsn",
            f"postgresql://u:{SECRET}@127.0.0.1:1/x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"postgresql://u:{MASK}@127.0.0.1:1/x" in proc.stderr and SECRET not in proc.stderr


def test_a_password_echoed_outside_its_dsn_is_masked_given_the_dsn() -> None:
    dsn = f"postgresql://u:p@{SECRET}%zz@h/x"
    echoed = f'invalid percent-encoded token: "p@{SECRET}%zz"; host "{SECRET}%zz@h"'
    assert SECRET not in redact_dsn(echoed, dsn=dsn)
    assert redact_dsn("port 5432 failed", dsn="postgresql://u:abc@h/x") == "port 5432 failed"


@pytest.mark.parametrize(
    "url", [f"etcd://u:{SECRET}@127.0.0.1:2379?bogus=1", f"etcd://u:{SECRET}@127.0.0.1:2379"]
)
def test_an_etcd_url_with_a_password_is_refused_without_it(url: str) -> None:
    from chronoid.errors import InvalidArgument
    from chronoid.lease.url import parse_registry_url

    with pytest.raises(InvalidArgument) as refused:
        parse_registry_url(url)
    assert SECRET not in str(refused.value), refused.value
