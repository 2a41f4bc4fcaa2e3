"""``published_segments``: Parquet + DuckDB tables for BI, replaced atomically, with history."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from em_pipeline.defs.assets.ingest import SUMMARY
from em_pipeline.defs.assets.model import MODEL_JSON
from em_pipeline.defs.assets.segments import PROFILES, SEGMENTS
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import MlflowTracker, PipelineStorage, Warehouse
from em_pipeline.lib.segments import SegmentBundle

HISTORY_COLUMNS = ["run_date", "customer_id", "segment", "segment_label", "confidence"]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"duckdb", "parquet"},
    deps=["customer_segments", "segment_profiles"],
    description="Publishes customer_segments and segment_profiles (replaced), the history tables "
    "customer_segments_history / segment_profiles_history and one row per run in segment_runs "
    "(keyed by run_date) into the DuckDB warehouse and Parquet, in one transaction; then points "
    "the MLflow registry alias at this run's model.",
)
def published_segments(
    context: dg.AssetExecutionContext,
    storage: PipelineStorage,
    warehouse: Warehouse,
    mlflow_tracker: MlflowTracker,
) -> dg.MaterializeResult:
    run_date = context.partition_key
    bundle = SegmentBundle.load(storage.path(run_date, MODEL_JSON))
    segments = storage.read_parquet(run_date, SEGMENTS)
    profiles = storage.read_parquet(run_date, PROFILES)
    ingest = storage.read_json(run_date, SUMMARY)
    idc = bundle.schema.id_column
    history = segments.rename(columns={idc: "customer_id"})[HISTORY_COLUMNS]
    info = bundle.info
    runs = pd.DataFrame(
        [
            {
                "run_date": run_date,
                "n_customers": len(segments),
                "n_quarantined": int(ingest["n_quarantined"]),
                "n_segments": bundle.n_segments,
                "covariance_type": str(bundle.model.covariance_type),
                "criterion": str(info.get("criterion") or ""),
                "em_core_version": info.get("em_core_version"),
                "data_digest": info.get("data_digest"),
                "mlflow_run_id": info.get("mlflow_run_id"),
                "model_version": str(info.get("model_version") or ""),
                "dagster_run_id": context.run.run_id,
                "published_at": datetime.now(UTC).replace(tzinfo=None),
            }
        ]
    )
    result = warehouse.publish(
        run_date,
        current={"customer_segments": segments, "segment_profiles": profiles},
        history={
            "customer_segments_history": history,
            "segment_profiles_history": profiles,
            "segment_runs": runs,
        },
    )
    context.log.info(f"published {result.row_counts} to {result.duckdb_path}")
    version = info.get("model_version")
    if version:
        mlflow_tracker.tracker().set_alias(str(version))
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
            "model_version": str(version or ""),
        }
    )
