#!/usr/bin/env bash
# The integrations against the oldest releases pyproject.toml declares (Pydantic 2.7, SQLAlchemy
# 2.0, Alembic 1.12, Django 4.2), in a throw-away venv. The default test run covers the newest
# releases; this one takes a minute or two (downloads), so it is not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/floor"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q -e . 'pydantic==2.7.0' 'sqlalchemy==2.0.0' 'alembic==1.12.0' \
    'django==4.2' pytest pytest-timeout hypothesis redis 'psycopg[binary]' orjson
scripts/services.sh
CHRONOID_REQUIRE_SERVICES=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q "$@" \
    tests/integrations/test_pydantic.py tests/integrations/test_sqlalchemy.py \
    tests/integrations/test_django.py tests/integrations/test_json.py
