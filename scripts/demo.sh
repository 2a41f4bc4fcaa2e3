#!/usr/bin/env bash
# Set up ./.venv (if needed) and run the nightly segmentation once for one partition.
# Default: built-in sample data, today's date, outputs under ./var. Options are passed through:
#   bash scripts/demo.sh --drop-dir /data/drops/{run_date} --run-date "$(date -u +%F)" --home /srv/em
# A second night (another --run-date) aligns its segment ids to the first night's model (the
# champion), warm-starts from it and publishes the drift report (drift_* tables):
#   bash scripts/demo.sh --run-date "$(date -u -d '2 days ago' +%F)" \
#     && bash scripts/demo.sh --run-date "$(date -u -d yesterday +%F)"
# Score new customers with the champion between refits:
#   .venv/bin/python -m em_pipeline score --input customers.csv --output scored.parquet
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m em_pipeline "$@"
