"""Run the nightly segmentation job for one partition: ``python -m em_pipeline --help``.

By default it runs on the built-in deterministic sample data for today's date and writes
everything (DuckDB warehouse, Parquet tables, MLflow store, Dagster run history) under ``./var``.

``python -m em_pipeline score --input customers.csv --output scored.parquet`` scores a file with
the champion model between refits (see :mod:`em_pipeline.scoring`).
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
from em_pipeline.failure_report import EXIT_HOME_BUSY, EXIT_USAGE, report_failure
from em_pipeline.lib.home_lock import HomeBusy, hold_home

# one queued run per home for runs launched from the Dagster UI or its schedule (the job is
# tagged em_segments/home; CLI runs take the home's lock instead); run monitoring fails UI runs
# whose worker died
DAGSTER_YAML = """telemetry:
  enabled: false
run_monitoring:
  enabled: true
concurrency:
  runs:
    tag_concurrency_limits:
      - key: em_segments/home
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m em_pipeline",
        usage="python -m em_pipeline [options]   (a night)\n"
        "       python -m em_pipeline score --input FILE --output FILE [options]   (scoring)",
        description="Run the nightly customer segmentation (ingest, impute, segment, log to "
        "MLflow, publish to Parquet + DuckDB) for one run date.",
        epilog="To score a file with the champion model between refits: python -m em_pipeline "
        "score --input customers.csv --output scored.parquet (see score --help). Exit codes: 0 "
        "published, 1 internal error, 2 bad arguments, 3 another run is using the home, 4 the "
        "drop was rejected, 5 a blocking check stopped publication; the closing lines say why "
        "and where, stack traces go to <home>/logs/.",
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
    p.add_argument(
        "--k-limit",
        type=int,
        help="while BIC chooses the largest K tried, the chosen covariance type is also fitted "
        "at larger K, up to this (default 16; give --k-max's value to keep K within the range)",
    )
    p.add_argument("--n-init", type=int, help="EM restarts per candidate (default 3)")
    p.add_argument("--seed", type=int, help="random seed of the model fit (default 0)")
    p.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another run is using the home, wait up to this long for it (default 0: fail at "
        "once, exit code 3)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print Dagster's event log (DEBUG) instead of one line per finished step",
    )
    p.add_argument(
        "--run-config",
        help="JSON file with a Dagster run config (ops.<asset>.config...), merged under the flags",
    )
    return p.parse_args(argv)


def _run_config(args: argparse.Namespace) -> dict:
    cfg: dict = json.loads(Path(args.run_config).read_text()) if args.run_config else {}
    ops = cfg.setdefault("ops", {})
    seg = ops.setdefault("segment_model", {}).setdefault("config", {})
    for key in ("k_min", "k_max", "k_limit", "n_init", "seed"):
        if getattr(args, key) is not None:
            seg[key] = getattr(args, key)
    return cfg


def _parse_score(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m em_pipeline score",
        description="Score new or changed customers with the champion model (the registered "
        "MLflow pyfunc model models:/<name>@champion), without refitting.",
    )
    p.add_argument("--input", required=True, help="CSV or Parquet file: customer_id + features")
    p.add_argument("--output", required=True, help="output file, .parquet or .csv")
    p.add_argument("--home", help=f"pipeline home (default: ${settings.HOME_ENV} or ./var)")
    p.add_argument(
        "--tracking-uri",
        help=f"MLflow tracking/registry URI (default: ${settings.MLFLOW_URI_ENV} or "
        "sqlite:///<home>/mlflow.db)",
    )
    p.add_argument("--model-name", default="customer-segments", help="registered model name")
    p.add_argument("--alias", default="champion", help="registry alias (default champion)")
    p.add_argument("--model-uri", help="score with this model URI instead of name@alias")
    return p.parse_args(argv)


def score_main(argv: list[str]) -> int:
    args = _parse_score(argv)
    _configure_threads()
    # MLflow's hints about type hints of the pyfunc model are not actionable here
    warnings.simplefilter("ignore", UserWarning)
    from em_pipeline.lib.validation import DropError
    from em_pipeline.scoring import score_file

    home = settings.home_dir(args.home)
    uri = args.tracking_uri or settings.mlflow_tracking_uri(home)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        print(f"error: no MLflow store at {uri}: run the nightly job first", file=sys.stderr)
        return 1
    _say_if_compiling()
    try:
        res = score_file(
            args.input,
            args.output,
            tracking_uri=uri,
            registered_model_name=args.model_name,
            alias=args.alias,
            model_uri=args.model_uri,
        )
    except (LookupError, FileNotFoundError, ValueError, DropError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"scored {res.n_scored} customer(s) with {res.model_uri} (version "
        f"{res.model_version or '?'}) -> {res.output}"
    )
    print(f"  customers per segment: {res.segment_counts}")
    if res.rejected is not None:
        print(f"  {res.n_rejected} row(s) rejected (reasons in {res.rejected})")
    return 0


def _run_date_problem(run_date: str) -> str | None:
    """Why ``run_date`` is not a partition the job can run, with the valid range; or None."""
    try:
        day = dt.date.fromisoformat(run_date)
    except ValueError:
        return f"--run-date must be YYYY-MM-DD, got {run_date!r}"
    first = dt.date.fromisoformat(settings.start_date())
    today = dt.datetime.now(ZoneInfo(settings.timezone())).date()
    if not first <= day <= today:
        return (
            f"--run-date {run_date} is outside the daily partitions: run dates go from "
            f"{first} to today, {today} ({settings.timezone()}); set {settings.START_DATE_ENV}"
            "=YYYY-MM-DD for earlier dates"
        )
    return None


def _say_if_compiling() -> None:
    from em_core.compile_cache import kernel_cache_is_warm

    if not kernel_cache_is_warm():
        print("  compiling em_core's kernels (first run after an install; about a minute)")


def _configure_threads() -> None:
    """em_core's thread policy, set here (its import sets nothing); imported late so that
    ``--help`` and argument errors do not wait for numba."""
    from em_core import configure_threads as configure

    configure()


def _quiet_libraries() -> None:
    """MLflow's start-up notes, progress bars and hints about signatures and type hints are not
    actionable for the operator of a nightly run."""
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?")
    warnings.filterwarnings("ignore", message=r".*(type hints|Integer columns in Python).*")


def _cli_job(definitions, *, verbose: bool):
    """The nightly job with the CLI's progress logger (and Dagster's console log if verbose)."""
    import dagster as dg

    from em_pipeline.cli_progress import progress_logger

    job = definitions.resolve_job_def(settings.JOB_NAME)
    steps = {key.path[-1] for asset in definitions.assets or [] for key in asset.keys}
    loggers = {"progress": progress_logger(steps)}
    if verbose:
        loggers["console"] = dg.colored_console_logger
    return job.with_logger_defs(loggers)


def _loggers(verbose: bool) -> dict:
    loggers: dict = {"progress": {}}
    if verbose:
        loggers["console"] = {"config": {"log_level": "DEBUG"}}
    return loggers


def _prepare_home(args: argparse.Namespace) -> Path:
    """Create the home (and DAGSTER_HOME in it) and export them; an OSError names the home when
    it cannot be written (read-only file system, permissions, full disk)."""
    home = settings.home_dir(args.home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"the home {home} cannot be written: {e.strerror or e}") from e
    os.environ[settings.HOME_ENV] = str(home)
    if args.drop_dir:
        os.environ[settings.DROP_DIR_ENV] = str(Path(args.drop_dir).expanduser().resolve())
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["score"]:
        return score_main(argv[1:])
    args = _parse(argv)
    run_date = args.run_date or dt.datetime.now(ZoneInfo(settings.timezone())).date().isoformat()
    problem = _run_date_problem(run_date)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    _quiet_libraries()
    _configure_threads()
    try:
        home = _prepare_home(args)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE

    import dagster as dg

    from em_pipeline.abandoned_runs import LAUNCHER_TAG, fail_abandoned_runs
    from em_pipeline.code_location import record_as_code_location_run, repository_tags
    from em_pipeline.definitions import defs

    definitions = defs()
    job = _cli_job(definitions, verbose=args.verbose)
    source = definitions.resources["source"]
    print(f"em-segments: run date {run_date}, source: {source.describe()}, home: {home}")
    _say_if_compiling()
    try:
        with (
            hold_home(
                home, wait_seconds=args.wait_for_lock, run_date=run_date, command=" ".join(argv)
            ),
            dg.DagsterInstance.get() as instance,
        ):
            for repair in fail_abandoned_runs(instance, str(home)):
                print(f"repaired: {repair}")
            result = job.execute_in_process(
                partition_key=run_date,
                instance=instance,
                run_config={**_run_config(args), "loggers": _loggers(args.verbose)},
                raise_on_error=False,
                tags={LAUNCHER_TAG: "cli", **repository_tags()},
            )
            record_as_code_location_run(instance, result.run_id)
    except HomeBusy as e:
        print(f"error: {e} (--wait-for-lock SECONDS)", file=sys.stderr)
        return EXIT_HOME_BUSY
    if not result.success:
        return report_failure(result, home, run_date, sys.stderr)
    print(summary(home, run_date))
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def summary(home: Path, run_date: str) -> str:
    import pandas as pd

    from em_pipeline.lib import artifacts

    part = home / "runs" / run_date
    model = json.loads((part / artifacts.MODEL_JSON).read_text())
    ingest = json.loads((part / artifacts.SUMMARY).read_text())
    drift = json.loads((part / artifacts.DRIFT_SUMMARY).read_text())
    profiles = pd.read_parquet(part / artifacts.PROFILES)
    info = model["info"]
    k = len(model["labels"])
    n_components = len(model["component_to_segment"])
    cov = model["model"].get("hyperparameters", {}).get("covariance_type", "?")
    merged = f", merged into {k} segments" if n_components != k else f" = {k} segments"
    lines = [
        "",
        f"Done. Everything is under {home}",
        f"  input: {ingest['n_input_rows']} rows, {ingest['n_valid']} valid customers, "
        f"{ingest['n_quarantined']} quarantined ({part / artifacts.QUARANTINE})",
        f"  chosen model: K={n_components} components, covariance '{cov}' "
        f"({info.get('criterion', 'bic').upper()}, lower is better){merged}; kept start: "
        f"{info.get('best_init')}",
    ]
    # why rows were quarantined and which entries were not read, right after the input line
    reasons = {k: v for k, v in (ingest.get("reason_counts") or {}).items() if v}
    lines[3:3] = [
        *([f"  quarantined by reason: {_counts(reasons)}"] if reasons else []),
        *(f"  skipped {name}: {why}" for name, why in (ingest.get("skipped_files") or {}).items()),
    ]
    if drift.get("has_champion"):
        lines += [
            f"  vs published {drift['champion_run_date']}: ids aligned; new segments "
            f"{info.get('new_segment_ids') or []}, retired {info.get('retired_segment_ids') or []}"
            f"; {drift['n_common_customers']} common customers, ARI {drift['ari']:.3f}, "
            f"{drift['stayed_share']:.1%} stayed in their segment, max PSI "
            f"{drift['max_psi']:.3f} ({drift['max_psi_feature']})",
        ]
    else:
        lines.append("  first model (no champion yet): segment ids by spend order")
    champion_date = info.get("champion_run_date")
    if champion_date and run_date < champion_date:
        promoted = (
            f"  back-fill: history tables now include {run_date}; the current tables and "
            f"models:/customer-segments@champion stay on the latest date, {champion_date}"
        )
    else:
        promoted = (
            "  promoted: published tables and models:/customer-segments@champion now use this model"
        )
    lines += [
        promoted,
        "  segments (stable ids):",
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
        "            tables: customer_segments, segment_profiles, segment_registry,",
        "                    segment_history (SCD2), customer_segments_history,",
        "                    segment_profiles_history, segment_runs, segment_champion,",
        "                    drift_transitions, drift_segments, drift_features, drift_runs",
        f"  Parquet:  {home / 'published'}/",
        f"  MLflow:   .venv/bin/mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'}   "
        "(then http://127.0.0.1:5000)",
        f"  Model:    models:/customer-segments@champion (version {info.get('model_version')})",
        f"  Score:    .venv/bin/python -m em_pipeline score --home {home} --input customers.csv "
        "--output scored.parquet",
        f"  Dagster:  DAGSTER_HOME={os.environ.get('DAGSTER_HOME')} "
        f"{settings.HOME_ENV}={home} .venv/bin/dagster dev -w workspace.yaml",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
