#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenv in .venv and installs dtn into it.
# Usage: scripts/venv.sh [EXTRAS]   e.g. scripts/venv.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    if [ -n "$extras" ]; then
        .venv/bin/python -m pip install -q -e ".[$extras]"
    else
        .venv/bin/python -m pip install -q -e .
    fi
    touch "$stamp"
fi
