#!/usr/bin/env bash
# Sets up .venv with the test extras and runs the whole suite: lint, types, tests.
# A throwaway PostgreSQL server is started for the storage tests when one is installed
# (DTN_TEST_PG_URL, if already set, is used as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh test
export PATH="$PWD/.venv/bin:$PATH"
started=""
if [ -z "${DTN_TEST_PG_URL:-}" ]; then
    eval "$(bash scripts/pg-tmp.sh start)"
    started="${DTN_TEST_PG_DIR:-}"
fi
cleanup() { [ -n "$started" ] && bash scripts/pg-tmp.sh stop "$started"; return 0; }
trap cleanup EXIT
echo "== ruff";  ruff check dtn tests benchmarks
echo "== mypy";  mypy
echo "== pytest"
status=0
python -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ "$status" = 5 ]; then echo "no tests were collected: failing" >&2; exit 1; fi
exit "$status"
