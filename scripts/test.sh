#!/usr/bin/env bash
# Set up the environment, lint, and run the whole test suite: one worker per core, each test
# file on one worker (module fixtures are built once), the files marked slow first (whole nights;
# tests/conftest.py), so no long file runs alone at the end; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -n auto --dist loadfile --no-loadscope-reorder "$@"
