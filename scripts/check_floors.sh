#!/usr/bin/env bash
# The integration tests against the oldest releases pyproject.toml admits (scripts/floors.txt),
# in .venv-floors. `scripts/check_floors.sh --install` (run by scripts/install.sh) builds that
# venv; without it the tests run there (scripts/test.sh does so after the main suite).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-floors
if [ "${1:-}" = --install ]; then
    python=${PYTHON:-python3}
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e . -r scripts/floors.txt \
        pytest pytest-timeout hypothesis redis 'psycopg[binary]' orjson
    echo "check_floors.sh: ready ($venv: $(grep -v '^#' scripts/floors.txt | tr '\n' ' '))"
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "check_floors.sh: $venv is missing; run scripts/install.sh (or scripts/check_floors.sh --install)" >&2
    exit 1
fi
scripts/services.sh >/dev/null
CHRONOID_REQUIRE_SERVICES=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q "$@" \
    tests/integrations/test_pydantic.py tests/integrations/test_sqlalchemy.py \
    tests/integrations/test_django.py tests/integrations/test_json.py
