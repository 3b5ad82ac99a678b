#!/usr/bin/env bash
# The test command: start missing servers, then lint, type-check and run every test,
# the integration tests against real PostgreSQL, Redis, etcd and NATS included.
# Extra arguments go to pytest (e.g. scripts/test.sh -k layout); without any, the integration
# tests then run again against the oldest supported releases (scripts/check_floors.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export CHRONOID_REQUIRE_SERVICES=1
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
if (($# == 0)); then
    scripts/check_floors.sh
fi
