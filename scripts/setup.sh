#!/usr/bin/env bash
# Create ./.venv (if needed) and install em-segments with its dev extras, then compile and cache
# em_core's kernels once (em_pipeline.warmup: a sample night and a score in a temporary home).
# Idempotent, and silent when nothing changed: the install is skipped while pyproject.toml matches
# the last install; pip's output goes to .venv/setup.log (printed only if the install fails).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.em-segments-installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
  && .venv/bin/python -c "import em_core, em_pipeline" 2>/dev/null; then
  exit 0
fi
echo "installing em-segments and its dependencies into .venv (log: .venv/setup.log)"
if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
  && .venv/bin/python -m pip install --quiet -e ".[dev]"; } > .venv/setup.log 2>&1; then
  cat .venv/setup.log
  echo "error: the install failed (log above, also in .venv/setup.log)" >&2
  exit 1
fi
.venv/bin/python -m em_pipeline.warmup
echo "$WANT" > "$STAMP"
