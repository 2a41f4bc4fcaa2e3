#!/usr/bin/env bash
# Set up ./.venv (if needed) and run the nightly segmentation once for one partition.
# Default: built-in sample data, today's date, outputs under ./var. Options are passed through:
#   bash scripts/demo.sh --drop-dir /data/drops/{run_date} --run-date 2024-05-01 --home /srv/em
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m em_pipeline "$@"
