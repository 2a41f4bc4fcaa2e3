"""``segment_model``: model selection over K x covariance type with em_core, logged to MLflow.

A thin asset over :mod:`em_pipeline.lib.segment_fit` (inputs, sweep) and
:mod:`em_pipeline.lib.model_record` (segment ids aligned to the champion, the model JSON and the
MLflow record); see there for the feature space and the warm start.
"""

from typing import Any

import dagster as dg
import pandas as pd

from em_pipeline.defs.config import SegmentModelConfig
from em_pipeline.defs.metadata import plot_metadata, segment_model_metadata
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import (
    ComputeBackend,
    CustomerSchemaResource,
    MlflowTracker,
    PipelineStorage,
    Warehouse,
)
from em_pipeline.lib import artifacts as a
from em_pipeline.lib.model_record import Lineage, assign_segments, record_model
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.segment_fit import ModelInputs, SweepSettings, candidate_line, model_inputs


def job_asset_keys(context: dg.AssetExecutionContext) -> str:
    """The asset keys of the running job, from its definitions (comma-separated, sorted)."""
    keys = context.job_def.asset_layer.executable_asset_keys
    return ",".join(sorted(key.to_user_string() for key in keys))


def _sweep_inputs(
    config: SegmentModelConfig, schema: CustomerSchema, storage: PipelineStorage, run_date: str,
    snapshot: pd.DataFrame, champion: Any | None,
) -> tuple[SweepSettings, ModelInputs]:  # fmt: skip
    """The sweep's settings and the matrices it fits; a bad setting or a mismatch with the
    champion's features stops the step with the reason."""
    try:
        settings = SweepSettings.from_config(config)
        inputs = model_inputs(
            schema, storage.read_parquet(run_date, a.FEATURES),
            storage.read_parquet(run_date, a.IMPUTED), snapshot,
            storage.read_json(run_date, a.TRANSFORM), champion,
            dequantize_seed=config.seed if config.dequantize else None,
        )  # fmt: skip
    except ValueError as e:
        raise dg.Failure(str(e)) from e
    return settings, inputs


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"python", "mlflow"},
    deps=["raw_customers", "customer_features", "imputed_customers"],
    description="Gaussian mixture chosen by BIC (default) over K and covariance types, fitted by "
    "em_core on the incomplete features (missing cells marginalised), warm-started from the "
    "champion and aligned to it for stable segment ids (new ids for new segments, retired ones "
    "recorded). Stored as JSON; every candidate's restart curves, the plots and the registered "
    "pyfunc model go to MLflow (the alias moves only when published_segments promotes it).",
)
def segment_model(
    context: dg.AssetExecutionContext,
    config: SegmentModelConfig,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
    warehouse: Warehouse,
    compute: ComputeBackend,
) -> dg.MaterializeResult:
    import em_core

    run_date, schema = context.partition_key, customer_schema.get()
    champion = warehouse.load_champion()
    snapshot = storage.read_parquet(run_date, a.SNAPSHOT)
    settings, inputs = _sweep_inputs(config, schema, storage, run_date, snapshot, champion)
    context.log.info(inputs.note)
    warm = champion.bundle.model if champion is not None and config.warm_start else None
    source = str(storage.path(run_date, a.SNAPSHOT))
    tracker = mlflow_tracker.tracker()
    parent = tracker.start_parent_run(run_date, context.run.run_id, {
        "dagster_job": context.job_name, "dagster_asset_keys": job_asset_keys(context),
        "em_core_version": em_core.__version__, "source_snapshot": source,
    })  # fmt: skip
    with tracker.failing_with(parent):
        context.log.info(settings.describe(inputs.X, compute.name, parent))
        try:
            with compute.data(inputs.X_fit) as data:
                outcome = settings.run(
                    data, warm, compute.selection_n_jobs,
                    lambda row: context.log.info(candidate_line(row, settings.criterion)),
                )  # fmt: skip
        except ValueError as e:
            raise dg.Failure(f"model selection failed for {run_date}: {e}") from e
        storage.write_parquet(outcome.table, run_date, a.SELECTION)
        context.log.info(
            f"chosen K={outcome.chosen[0]} {outcome.chosen[1]} (start: {outcome.chosen_init}); "
            f"{outcome.warm_summary}"
        )
        segments = assign_segments(
            outcome, inputs, snapshot, champion, schema, run_date, segments=config.segments,
            min_share=config.min_segment_share, max_match_distance=config.max_match_distance,
        )  # fmt: skip
        assignment = segments.assignment
        storage.write_parquet(assignment.alignment, run_date, a.ALIGNMENT)
        storage.write_parquet(assignment.registry, run_date, a.REGISTRY)
        context.log.info(
            f"{segments.note}; segment ids {sorted(set(assignment.component_to_segment))}; new "
            f"{assignment.new_ids}, retired {assignment.retired_ids}"
        )
        lineage = Lineage(
            run_date, context.run.run_id, source, champion, warm is not None,
            config.min_segment_share,
        )  # fmt: skip
        record = record_model(
            tracker, parent, lineage, settings, inputs, outcome, segments, snapshot, schema,
            storage.path(run_date, a.MODEL_JSON), storage.partition_dir(run_date) / a.PLOTS,
        )  # fmt: skip
        tracker.finish(parent)
    record.bundle.info.update({"model_uri": record.model_uri, "model_version": record.version})
    record.bundle.save(record.path)
    links = {
        "run_id": parent, "run_url": tracker.run_url(parent), "model_uri": record.model_uri,
        "version": record.version, "digest": record.digest,
        "em_core_version": em_core.__version__,
    }  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            **segment_model_metadata(
                record.path, settings, outcome, record.bundle, assignment, champion, links
            ),
            **plot_metadata(record.plots),
        }
    )
