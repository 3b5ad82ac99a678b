"""Django as a user runs it: ``makemigrations`` then ``migrate`` then the ORM, in a subprocess
(``django.setup()`` + ``call_command``), against the real PostgreSQL and SQLite.

The migration ``makemigrations`` writes must load and run: at a95c2b7 ``default=gen.next_id``
became ``chronoid.generator.Generator.next_id`` and loading it raised ``TypeError``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import django

from chronoid import get_layout

ROOT = Path(__file__).resolve().parents[2]

MODELS = """
from django.db import models
from chronoid.integrations.django import ChronoIdField, ChronoNext
from chronoid.integrations.defaults import IdDefault


class Order(models.Model):
    id = ChronoIdField(primary_key=True, default=IdDefault("chrono64s", node=5))
    note = models.TextField(default="")


class Tenant(models.Model):
    id = ChronoIdField(
        primary_key=True, variant="chrono32y", default=IdDefault("chrono32y", node=2)
    )
"""

DB_DEFAULT_MODEL = """

class Invoice(models.Model):
    id = ChronoIdField(primary_key=True, db_default=ChronoNext("chrono64s"))
    order = models.ForeignKey(Order, on_delete=models.CASCADE, null=True)
"""

INSTALL_MIGRATION = """
from django.db import migrations
from chronoid.integrations.django import InstallChronoid


class Migration(migrations.Migration):
    operations = [InstallChronoid()]
"""

SCRIPT = """
import json, os, sys
import django
from django.core.management import call_command

django.setup()
call_command("makemigrations", "shop", verbosity=0)
call_command("migrate", verbosity=0)
from django.core.exceptions import ValidationError
from shop.models import Order, Tenant

orders = [Order.objects.create(note=str(i)) for i in range(20)]
tenant = Tenant.objects.create()
out = {"orders": [o.id for o in Order.objects.order_by("id")], "tenant": tenant.id}
assert Order.objects.get(pk=str(orders[0].id)).id == orders[0].id  # a decimal string looks up
try:
    Order(id=-1).full_clean()
except ValidationError as exc:
    out["invalid"] = str(exc)
if os.environ.get("WITH_DB_DEFAULT"):
    from shop.models import Invoice
    invoices = [Invoice.objects.create(order=orders[0]) for _ in range(10)]
    out["invoices"] = [i.id for i in invoices]  # read back through RETURNING
    out["invoices_db"] = sorted(Invoice.objects.values_list("id", flat=True))
call_command("migrate", "shop", "zero", verbosity=0)  # and back down
print(json.dumps(out))
"""


def _project(tmp_path: Path, database: dict[str, object], db_default: bool) -> Path:
    app = tmp_path / "shop"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS + (DB_DEFAULT_MODEL if db_default else ""))
    if db_default:  # `makemigrations shop --empty`, edited: the functions before the tables
        (app / "migrations" / "0001_chronoid.py").write_text(INSTALL_MIGRATION)
    (tmp_path / "settings.py").write_text(
        textwrap.dedent(
            f"""
            INSTALLED_APPS = ["shop"]
            DATABASES = {{"default": {database!r}}}
            DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
            USE_TZ = True
            """
        )
    )
    (tmp_path / "run.py").write_text(SCRIPT)
    return tmp_path


def _run(project: Path, db_default: bool) -> dict[str, object]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings",
        "PYTHONPATH": os.pathsep.join([str(project), str(ROOT / "src")]),
    }
    if db_default:
        env["WITH_DB_DEFAULT"] = "1"
    proc = subprocess.run(
        [sys.executable, "run.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _check_migration(project: Path) -> None:
    written = "\n".join(p.read_text() for p in (project / "shop" / "migrations").glob("0*.py"))
    assert "chronoid.integrations.defaults.IdDefault('chrono64s', node=5)" in written
    assert "chronoid.integrations.django.ChronoIdField(" in written
    assert "variant='chrono32y'" in written
    assert "next_id" not in written


def _check_ids(result: dict[str, object]) -> None:
    orders = result["orders"]
    assert isinstance(orders, list) and len(set(orders)) == 20
    assert {get_layout("chrono64s").node_of(i) for i in orders} == {5}
    tenant = result["tenant"]
    assert isinstance(tenant, int) and 0 < tenant <= get_layout("chrono32y").max_id
    assert "not a chrono64s ID" in str(result["invalid"])


def test_sqlite_python_default(tmp_path: Path) -> None:
    project = _project(
        tmp_path, {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db")}, False
    )
    result = _run(project, db_default=False)
    _check_migration(project)
    _check_ids(result)


def test_postgresql_python_and_database_defaults(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    from urllib.parse import urlsplit

    dsn = urlsplit(pg_dsn)
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": dsn.path.lstrip("/"),
        "USER": dsn.username or "postgres",
        "HOST": dsn.hostname or "127.0.0.1",
        "PORT": str(dsn.port or 5432),
        "OPTIONS": {"options": f"-c search_path={pg_schema}"},
    }
    db_default = django.VERSION >= (5, 0)  # db_default= is new in Django 5.0
    project = _project(tmp_path, database, db_default)
    result = _run(project, db_default=db_default)
    _check_migration(project)
    _check_ids(result)
    if not db_default:
        return
    invoices = result["invoices"]
    assert isinstance(invoices, list) and len(set(invoices)) == 10
    assert sorted(invoices) == result["invoices_db"]  # the keys Django read back are the rows'
    written = (project / "shop" / "migrations" / "0002_initial.py").read_text()
    assert "chronoid.integrations.django.ChronoNext('chrono64s')" in written
    assert "('shop', '0001_chronoid')" in written  # the tables come after the functions
