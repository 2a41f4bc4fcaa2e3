"""``published_segments``: promotion. Parquet + DuckDB tables for BI, replaced atomically.

This asset runs only when every blocking check upstream passed (including the drift gates on
``segment_drift``); it is the single place where a model becomes the champion:

1. as **one new published version** (one DuckDB transaction, Parquet exported from it, switched
   in by one rename; see ``em_pipeline.lib.warehouse``): the current
   tables ``customer_segments``, ``segment_profiles``, ``segment_registry`` and
   ``segment_champion`` (the model JSON, read back by the next night's ``segment_model``), the
   history tables keyed by run_date (``customer_segments_history``, ``segment_profiles_history``,
   ``segment_runs``, ``drift_transitions``, ``drift_segments``, ``drift_features``,
   ``drift_runs``) and the SCD type 2 ``segment_history`` derived from
   ``customer_segments_history``;
2. after the commit, the MLflow registry alias (``champion``) moves to this run's model version
   and the MLflow run gets the tag ``promoted=true``.
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
    REGISTRY,
    SEGMENTS,
    SUMMARY,
)
from em_pipeline.lib.drift_report import summary_frame
from em_pipeline.lib.failpoints import failpoint
from em_pipeline.lib.history import segment_history_sql
from em_pipeline.lib.promotion import point_alias_at
from em_pipeline.lib.segments import SegmentBundle

HISTORY_COLUMNS = ["run_date", "customer_id", "segment", "segment_label", "confidence"]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"duckdb", "parquet"},
    deps=["customer_segments", "segment_profiles", "segment_drift"],
    description="Promotion (runs only if every blocking check passed, drift gates included): "
    "publishes customer_segments, segment_profiles, segment_registry, segment_champion "
    "(replaced), the run_date-keyed history tables (customer_segments_history, "
    "segment_profiles_history, segment_runs, drift_*) and the SCD2 segment_history into DuckDB "
    "and Parquet in one transaction; then points the MLflow registry alias at this run's model.",
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
    champion = warehouse.load_champion()
    if (None if champion is None else champion.run_date) != info.get("champion_run_date"):
        raise dg.Failure(
            f"the champion changed since segment_model ran (was {info.get('champion_run_date')},"
            f" now {None if champion is None else champion.run_date}): re-run from segment_model"
        )
    segments = storage.read_parquet(run_date, SEGMENTS)
    profiles = storage.read_parquet(run_date, PROFILES)
    ingest = storage.read_json(run_date, SUMMARY)
    drift = storage.read_json(run_date, DRIFT_SUMMARY)
    registry = storage.read_parquet(run_date, REGISTRY)
    idc = bundle.schema.id_column
    history = segments.rename(columns={idc: "customer_id"})[HISTORY_COLUMNS]
    published_at = datetime.now(UTC).replace(tzinfo=None)
    version = str(info.get("model_version") or "")
    runs = pd.DataFrame(
        [
            {
                "run_date": run_date,
                "n_customers": len(segments),
                "n_quarantined": int(ingest["n_quarantined"]),
                "n_segments": bundle.n_segments,
                "segment_ids": ",".join(map(str, bundle.segment_ids)),
                "covariance_type": str(bundle.model.covariance_type),
                "criterion": str(info.get("criterion") or ""),
                "em_core_version": info.get("em_core_version"),
                "data_digest": info.get("data_digest"),
                "mlflow_run_id": info.get("mlflow_run_id"),
                "model_version": version,
                "dagster_run_id": context.run.run_id,
                "published_at": published_at,
                "champion_run_date": info.get("champion_run_date"),
                "warm_start": bool(info.get("warm_start")),
                "best_init": str(info.get("best_init") or ""),
                "new_segment_ids": ",".join(map(str, info.get("new_segment_ids") or [])),
                "retired_segment_ids": ",".join(map(str, info.get("retired_segment_ids") or [])),
            }
        ]
    )
    champion_row = pd.DataFrame(
        [
            {
                "run_date": run_date,
                "model_version": version,
                "model_uri": str(info.get("model_uri") or ""),
                "mlflow_run_id": str(info.get("mlflow_run_id") or ""),
                "dagster_run_id": context.run.run_id,
                "promoted_at": published_at,
                "segment_ids": ",".join(map(str, bundle.segment_ids)),
                "model_json": model_json,
            }
        ]
    )
    result = warehouse.publish(
        run_date,
        current={
            "customer_segments": segments,
            "segment_profiles": profiles,
            REGISTRY_TABLE: registry,
            CHAMPION_TABLE: champion_row,
        },
        history={
            "customer_segments_history": history,
            "segment_profiles_history": profiles,
            "segment_runs": runs,
            "drift_transitions": storage.read_parquet(run_date, DRIFT_TRANSITIONS),
            "drift_segments": storage.read_parquet(run_date, DRIFT_SEGMENTS),
            "drift_features": storage.read_parquet(run_date, DRIFT_FEATURES),
            "drift_runs": summary_frame(drift),
        },
        derived={"segment_history": segment_history_sql("customer_segments_history")},
    )
    context.log.info(f"published {result.row_counts} to {result.duckdb_path}")
    failpoint("publish:before_alias")
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
    return dg.MaterializeResult(
        metadata={
            "duckdb_path": dg.MetadataValue.path(str(result.duckdb_path)),
            "parquet_files": dg.MetadataValue.json(
                {k: str(v) for k, v in result.parquet_files.items()}
            ),
            **{f"rows/{k}": v for k, v in result.row_counts.items()},
            "query": dg.MetadataValue.md(
                f"```\nduckdb -readonly {result.duckdb_path} \\\n"
                '  "SELECT segment, segment_label, size, share FROM segment_profiles"\n```'
            ),
            "model_alias": f"models:/{mlflow_tracker.registered_model_name}@{mlflow_tracker.alias}",
            "model_version": version,
            "segment_ids": dg.MetadataValue.json(bundle.segment_ids),
            "replaced_champion": "" if champion is None else champion.run_date,
        }
    )
