"""``raw_customers``: validated Parquet snapshot of the run date's drop, plus the quarantine."""

import dagster as dg

from em_pipeline.defs.config import IngestConfig
from em_pipeline.defs.metadata import column_schema
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.recovery import repair_home
from em_pipeline.defs.resources import (
    CustomerSchemaResource,
    CustomerSource,
    MlflowTracker,
    PipelineStorage,
    Warehouse,
)
from em_pipeline.lib.artifacts import QUARANTINE, SNAPSHOT, SUMMARY
from em_pipeline.lib.validation import DropError, ingest_folder


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"pandas", "parquet"},
    description="Customer drop of the run date, typed and validated; bad rows go to "
    "quarantine.parquet with a reason. A missing or empty drop fails the run. First repairs what "
    "a crashed night left (publish leftovers, the registry alias behind the warehouse champion).",
)
def raw_customers(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    source: CustomerSource,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
    warehouse: Warehouse,
    mlflow_tracker: MlflowTracker,
) -> dg.MaterializeResult:
    run_date = context.partition_key
    for repair in repair_home(warehouse, mlflow_tracker):
        context.log.warning(f"repaired: {repair}")
    schema = customer_schema.get()
    try:
        folder = source.drop_folder(run_date)
        context.log.info(f"reading customer drop for {run_date} from {folder}")
        result = ingest_folder(
            folder,
            schema,
            unknown_columns=config.unknown_columns,
            duplicates=config.duplicates,
            encoding=config.encoding,
            undecodable_files=config.undecodable_files,
            outlier_robust_z=config.outlier_robust_z,
            outlier_robust_z_log=config.outlier_robust_z_log,
        )
    except DropError as e:
        raise dg.Failure(
            description=f"customer drop for {run_date} rejected: {e}",
            metadata={"source": source.describe()},
            allow_retries=False,
        ) from e
    snap_path = storage.write_parquet(result.snapshot, run_date, SNAPSHOT)
    q_path = storage.write_parquet(result.quarantine, run_date, QUARANTINE)
    summary = {
        "run_date": run_date,
        "drop_folder": str(folder),
        "files": result.files,
        "n_input_rows": result.n_input_rows,
        "n_valid": len(result.snapshot),
        "n_quarantined": len(result.quarantine),
        "quarantine_share": result.quarantine_share,
        "reason_counts": result.reason_counts,
        "ignored_columns": result.ignored_columns,
        "skipped_files": result.skipped_files,
        "skipped_rows": result.skipped_rows,
    }
    storage.write_json(summary, run_date, SUMMARY)
    for name, why in result.skipped_files.items():
        context.log.warning(f"skipped {name}: {why}")
    context.log.info(
        f"{len(result.snapshot)} valid customers, {len(result.quarantine)} quarantined "
        f"of {result.n_input_rows} rows ({result.reason_counts})"
    )
    preview = result.quarantine.head(20)
    metadata = {
        "dagster/row_count": len(result.snapshot),
        "dagster/column_schema": column_schema(result.snapshot),
        "path": dg.MetadataValue.path(str(snap_path)),
        "quarantine_path": dg.MetadataValue.path(str(q_path)),
        "drop_folder": str(folder),
        "files": dg.MetadataValue.json(result.files),
        "n_input_rows": result.n_input_rows,
        "n_quarantined": len(result.quarantine),
        "quarantine_share": float(result.quarantine_share),
        **{f"quarantine/{code}": n for code, n in result.reason_counts.items()},
        "ignored_columns": dg.MetadataValue.json(result.ignored_columns),
        "skipped_files": dg.MetadataValue.json(result.skipped_files),
        "quarantine_preview": dg.MetadataValue.md(
            preview.to_markdown(index=False) if len(preview) else "(no quarantined rows)"
        ),
    }
    return dg.MaterializeResult(metadata=metadata)
