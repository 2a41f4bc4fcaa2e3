"""Run the nightly segmentation job for one partition: ``python -m em_pipeline --help``.

By default it runs on the built-in deterministic sample data for today's date and writes
everything (DuckDB warehouse, Parquet tables, MLflow store, Dagster run history) under ``./var``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import warnings
from pathlib import Path
from zoneinfo import ZoneInfo

from em_pipeline import settings


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m em_pipeline",
        description="Run the nightly customer segmentation (ingest, impute, segment, log to "
        "MLflow, publish to Parquet + DuckDB) for one run date.",
    )
    p.add_argument(
        "--home",
        help=f"folder for all outputs (default: ${settings.HOME_ENV} or ./var)",
    )
    p.add_argument(
        "--drop-dir",
        help="folder of the customer drop (CSV and/or Parquet files); '{run_date}' in the path is "
        "replaced by the run date. Default: the built-in sample data.",
    )
    p.add_argument(
        "--run-date",
        help="partition to run, YYYY-MM-DD (default: today in the schedule timezone)",
    )
    p.add_argument("--k-min", type=int, help="smallest number of segments tried (default 1)")
    p.add_argument("--k-max", type=int, help="largest number of segments tried (default 8)")
    p.add_argument("--n-init", type=int, help="EM restarts per candidate (default 3)")
    p.add_argument("--seed", type=int, help="random seed of the model fit (default 0)")
    p.add_argument(
        "--run-config",
        help="JSON file with a Dagster run config (ops.<asset>.config...), merged under the flags",
    )
    return p.parse_args(argv)


def _run_config(args: argparse.Namespace) -> dict:
    cfg: dict = json.loads(Path(args.run_config).read_text()) if args.run_config else {}
    ops = cfg.setdefault("ops", {})
    seg = ops.setdefault("segment_model", {}).setdefault("config", {})
    for flag, key in (("k_min", "k_min"), ("k_max", "k_max"), ("n_init", "n_init")):
        if getattr(args, flag) is not None:
            seg[key] = getattr(args, flag)
    if args.seed is not None:
        seg["seed"] = args.seed
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # MLflow's hints about signatures and type hints are not actionable for this model
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?")
    home = settings.home_dir(args.home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ[settings.HOME_ENV] = str(home)
    if args.drop_dir:
        os.environ[settings.DROP_DIR_ENV] = str(Path(args.drop_dir).expanduser().resolve())
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run_date = args.run_date or dt.datetime.now(ZoneInfo(settings.timezone())).date().isoformat()
    try:
        dt.date.fromisoformat(run_date)
    except ValueError:
        print(f"error: --run-date must be YYYY-MM-DD, got {run_date!r}", file=sys.stderr)
        return 2

    import dagster as dg

    from em_pipeline.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def(settings.JOB_NAME)
    source = definitions.resources["source"]
    print(f"em-segments: run date {run_date}, source: {source.describe()}, home: {home}")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=run_date,
            instance=instance,
            run_config=_run_config(args),
            raise_on_error=False,
        )
    if not result.success:
        print("\nRUN FAILED", file=sys.stderr)
        for event in result.all_events:
            if event.is_step_failure:
                err = event.step_failure_data.error
                print(f"  step {event.step_key}: {err.message.strip()}", file=sys.stderr)
        for ev in result.get_asset_check_evaluations():
            if not ev.passed:
                print(f"  check {ev.check_name} failed: {ev.metadata}", file=sys.stderr)
        print(
            f"  Dagster run id {result.run_id}; logs in {os.environ['DAGSTER_HOME']}",
            file=sys.stderr,
        )
        return 1
    print(summary(home, run_date))
    return 0


def summary(home: Path, run_date: str) -> str:
    import pandas as pd

    part = home / "runs" / run_date
    model = json.loads((part / "segment_model.json").read_text())
    ingest = json.loads((part / "ingest_summary.json").read_text())
    profiles = pd.read_parquet(part / "segment_profiles.parquet")
    k = len(model["labels"])
    cov = model["model"].get("hyperparameters", {}).get("covariance_type", "?")
    lines = [
        "",
        f"Done. Everything is under {home}",
        f"  input: {ingest['n_input_rows']} rows, {ingest['n_valid']} valid customers, "
        f"{ingest['n_quarantined']} quarantined ({part / 'quarantine.parquet'})",
        f"  chosen model: K={k} segments, covariance '{cov}' "
        f"({model['info'].get('criterion', 'bic').upper()}, lower is better)",
        "  segments:",
    ]
    for r in profiles.itertuples():
        lines.append(
            f"    {r.segment}: {r.segment_label:<48} {r.size:>7} customers ({r.share:.1%})"
        )
    lines += [
        "",
        "Where to look:",
        f'  DuckDB:   .venv/bin/python -c "import duckdb; print(duckdb.connect('
        f"'{home / 'warehouse.duckdb'}', read_only=True).sql('FROM segment_profiles'))\"",
        "            tables: customer_segments, segment_profiles, customer_segments_history,",
        "                    segment_profiles_history, segment_runs",
        f"  Parquet:  {home / 'published'}/",
        f"  MLflow:   mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'}   "
        "(then http://127.0.0.1:5000)",
        f"  Model:    models:/customer-segments@champion "
        f"(version {model['info'].get('model_version')})",
        f"  Dagster:  DAGSTER_HOME={os.environ.get('DAGSTER_HOME')} "
        f"{settings.HOME_ENV}={home} dagster dev -w workspace.yaml",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
