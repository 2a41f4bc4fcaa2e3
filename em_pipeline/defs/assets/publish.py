"""``published_segments``: promotion. Parquet + DuckDB tables for BI, replaced atomically.

This asset runs only when every blocking check upstream passed (including the drift gates on
``segment_drift``); it is the single place where a model becomes the champion:

1. as **one new published version** (one DuckDB transaction, Parquet exported from it, switched
   in by one rename; see ``em_pipeline.lib.warehouse``): the current tables
   ``customer_segments``, ``segment_profiles`` and ``segment_champion`` (the model JSON, read back
   by the next night's ``segment_model``), the history tables keyed by run_date
   (``customer_segments_history``, ``segment_profiles_history``, ``segment_runs``,
   ``drift_transitions``, ``drift_segments``, ``drift_features``, ``drift_runs``) and the tables
   derived from the history (SCD type 2 ``segment_history``, ``segment_registry``);
2. after the commit, the MLflow registry alias (``champion``) moves to this run's model version
   and the MLflow run gets the tag ``promoted=true``.

A back-fill (a run date before the champion's, see ``em_pipeline.lib.publication``) writes only
the history and derived tables: the current tables and the alias stay on the latest date.
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import (
    CHAMPION_TABLE,
    REGISTRY_TABLE,
    MlflowTracker,
    PipelineStorage,
    Warehouse,
)
from em_pipeline.lib.artifacts import (
    DRIFT_FEATURES,
    DRIFT_SEGMENTS,
    DRIFT_SUMMARY,
    DRIFT_TRANSITIONS,
    MODEL_JSON,
    PROFILES,
    SEGMENTS,
    SUMMARY,
)
from em_pipeline.lib.drift_report import summary_frame
from em_pipeline.lib.failpoints import failpoint
from em_pipeline.lib.history import segment_history_sql, segment_registry_sql
from em_pipeline.lib.promotion import point_alias_at
from em_pipeline.lib.publication import (
    champion_row,
    customer_history,
    is_backfill,
    run_row,
)
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.warehouse import PublishResult


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"duckdb", "parquet"},
    deps=["customer_segments", "segment_profiles", "segment_drift"],
    description="Promotion (runs only if every blocking check passed, drift gates included): "
    "publishes customer_segments, segment_profiles, segment_champion (replaced), the "
    "run_date-keyed history tables (customer_segments_history, segment_profiles_history, "
    "segment_runs, drift_*) and the derived segment_history (SCD2) and segment_registry into "
    "DuckDB and Parquet as one atomic version; then points the MLflow registry alias at this "
    "run's model. A back-fill (date before the champion's) writes only history.",
)
def published_segments(
    context: dg.AssetExecutionContext,
    storage: PipelineStorage,
    warehouse: Warehouse,
    mlflow_tracker: MlflowTracker,
) -> dg.MaterializeResult:
    run_date = context.partition_key
    model_json = storage.path(run_date, MODEL_JSON).read_text()
    bundle = SegmentBundle.from_json(model_json)
    info = bundle.info
    champion = warehouse.expect_champion(info.get("champion_run_date"))
    segments = storage.read_parquet(run_date, SEGMENTS)
    profiles = storage.read_parquet(run_date, PROFILES)
    published_at = datetime.now(UTC).replace(tzinfo=None)
    backfill = is_backfill(run_date, None if champion is None else champion.run_date)
    version = "" if backfill else str(info.get("model_version") or "")
    current = {} if backfill else {
        "customer_segments": segments,
        "segment_profiles": profiles,
        CHAMPION_TABLE: champion_row(
            bundle, model_json, run_date, dagster_run_id=context.run.run_id,
            published_at=published_at,
        ),
    }  # fmt: skip
    runs = run_row(
        bundle,
        run_date,
        n_customers=len(segments),
        n_quarantined=int(storage.read_json(run_date, SUMMARY)["n_quarantined"]),
        dagster_run_id=context.run.run_id,
        published_at=published_at,
        backfill=backfill,
    )
    result = warehouse.publish(
        run_date,
        current=current,
        history={
            "customer_segments_history": customer_history(segments, bundle.schema.id_column),
            "segment_profiles_history": profiles,
            "segment_runs": runs,
            **_drift_tables(storage, run_date),
        },
        derived={
            "segment_history": segment_history_sql("customer_segments_history"),
            REGISTRY_TABLE: segment_registry_sql("segment_profiles_history"),
        },
    )
    context.log.info(f"published {result.row_counts} to {result.duckdb_path}")
    failpoint("publish:before_alias")
    if backfill:
        context.log.info(
            f"back-fill of {run_date}: history tables updated; the current tables and the "
            f"registry alias stay on the champion of {champion.run_date}"
        )
        if info.get("mlflow_run_id"):
            mlflow_tracker.tracker().set_tags(info["mlflow_run_id"], {"backfill": "true"})
    else:
        _promote(context, mlflow_tracker, version, info, published_at)
    return dg.MaterializeResult(
        metadata={
            **_warehouse_metadata(result),
            "model_alias": f"models:/{mlflow_tracker.registered_model_name}@{mlflow_tracker.alias}",
            "model_version": version,
            "segment_ids": dg.MetadataValue.json(bundle.segment_ids),
            "replaced_champion": "" if champion is None or backfill else champion.run_date,
            "backfill": backfill,
        }
    )


def _warehouse_metadata(result: PublishResult) -> dict[str, object]:
    """Where the version went (DuckDB file, Parquet files), its row counts, a query to try."""
    return {
        "duckdb_path": dg.MetadataValue.path(str(result.duckdb_path)),
        "parquet_files": dg.MetadataValue.json(
            {k: str(v) for k, v in result.parquet_files.items()}
        ),
        **{f"rows/{k}": v for k, v in result.row_counts.items()},
        "query": dg.MetadataValue.md(
            f"```\nduckdb -readonly {result.duckdb_path} \\\n"
            '  "SELECT segment, segment_label, size, share FROM segment_profiles"\n```'
        ),
    }


def _drift_tables(storage: PipelineStorage, run_date: str) -> dict[str, pd.DataFrame]:
    """The night's drift tables (``segment_drift``'s files), keyed by warehouse table."""
    return {
        "drift_transitions": storage.read_parquet(run_date, DRIFT_TRANSITIONS),
        "drift_segments": storage.read_parquet(run_date, DRIFT_SEGMENTS),
        "drift_features": storage.read_parquet(run_date, DRIFT_FEATURES),
        "drift_runs": summary_frame(storage.read_json(run_date, DRIFT_SUMMARY)),
    }


def _promote(
    context: dg.AssetExecutionContext,
    mlflow_tracker: MlflowTracker,
    version: str,
    info: dict,
    published_at: datetime,
) -> None:
    """Point the registry alias at this run's model version (when it has one)."""
    if point_alias_at(
        mlflow_tracker.tracker(),
        version,
        str(info.get("mlflow_run_id") or ""),
        published_at.isoformat() + "Z",
    ):
        context.log.info(
            f"registry alias models:/{mlflow_tracker.registered_model_name}@"
            f"{mlflow_tracker.alias} -> version {version}"
        )
