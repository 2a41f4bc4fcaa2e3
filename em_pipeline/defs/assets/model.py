"""``segment_model``: model selection over K x covariance type with em_core, logged to MLflow.

A thin asset over :mod:`em_pipeline.lib.segment_fit` (inputs, sweep, MLflow record) and
:mod:`em_pipeline.lib.stable_ids` (segment ids aligned to the champion); see there for the
feature space and the warm start.
"""

from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd

import em_pipeline
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
from em_pipeline.lib.segment_fit import (
    SweepSettings,
    bundle_info,
    candidate_line,
    log_merge_path,
    merged_assignment,
    model_inputs,
    parent_summary,
)
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.stable_ids import assign_segment_ids


def job_asset_keys(context: dg.AssetExecutionContext) -> str:
    """The asset keys of the running job, from its definitions (comma-separated, sorted)."""
    keys = context.job_def.asset_layer.executable_asset_keys
    return ",".join(sorted(key.to_user_string() for key in keys))


def code_paths() -> list[str]:
    import em_core

    return [str(Path(em_core.__file__).parent), str(Path(em_pipeline.__file__).parent)]


def pip_requirements() -> list[str]:
    import numpy
    import scipy

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={numpy.__version__}",
        f"scipy=={scipy.__version__}",
        f"pandas=={pd.__version__}",
    ]


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
    context.log.info(inputs.note)
    warm = champion.bundle.model if champion is not None and config.warm_start else None
    tracker = mlflow_tracker.tracker()
    parent = tracker.start_parent_run(run_date, context.run.run_id, {
        "dagster_job": context.job_name, "dagster_asset_keys": job_asset_keys(context),
        "em_core_version": em_core.__version__,
        "source_snapshot": str(storage.path(run_date, a.SNAPSHOT)),
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
        k, cov = outcome.chosen
        context.log.info(
            f"chosen K={k} {cov} (start: {outcome.chosen_init}); {outcome.warm_summary}"
        )
        merge_table = None
        if config.segments == "merged":
            assignment, merged, merge_table = merged_assignment(
                outcome.result.best, inputs, snapshot, champion, schema, run_date,
                min_share=config.min_segment_share,
            )  # fmt: skip
            context.log.info(f"{k} components merged into {merged.n_segments} segments (DEMP)")
        else:
            assignment = assign_segment_ids(
                outcome.result.best, None if champion is None else champion.bundle, schema,
                run_date, registry=None if champion is None else champion.registry,
                max_match_distance=config.max_match_distance,
            )  # fmt: skip
        storage.write_parquet(assignment.alignment, run_date, a.ALIGNMENT)
        storage.write_parquet(assignment.registry, run_date, a.REGISTRY)
        context.log.info(
            f"segment ids {sorted(set(assignment.component_to_segment))}; new "
            f"{assignment.new_ids}, retired {assignment.retired_ids}"
        )
        outcome.log_candidates(tracker, parent, settings.fit_params())
        source = str(storage.path(run_date, a.SNAPSHOT))
        digest = tracker.log_dataset(parent, snapshot, source=source, name="raw_customers")
        info = bundle_info(
            run_date, context.run.run_id, parent, digest, settings, inputs, champion,
            warm is not None, outcome, assignment,
        ) | {"min_segment_share": config.min_segment_share}  # fmt: skip
        bundle = SegmentBundle.build(
            outcome.result.best, schema, inputs.transform, info,
            assignment.component_to_segment, assignment.labels,
        )  # fmt: skip
        model_path = bundle.save(storage.path(run_date, a.MODEL_JSON))
        plots = outcome.log_plots(
            tracker, parent, settings.criterion, storage.partition_dir(run_date) / a.PLOTS
        )
        tracker.log_table(parent, outcome.table, "selection_table", "selection")
        tracker.log_table(parent, assignment.alignment, "segment_alignment", "segments")
        tracker.log_table(parent, assignment.registry, "segment_registry_proposed", "segments")
        tracker.log_artifacts(parent, [model_path], "model_json")
        if merge_table is not None:
            log_merge_path(tracker, parent, merge_table)
        example = snapshot[schema.feature_names].head(20)
        model_uri, version = tracker.log_pyfunc_model(
            parent, model_path, example, bundle.score(example), code_paths(), pip_requirements()
        )
        tracker.log_parent_summary(parent, **parent_summary(
            settings, outcome, inputs, assignment, bundle, champion, version, digest
        ))  # fmt: skip
        tracker.finish(parent)
    bundle.info.update({"model_uri": model_uri, "model_version": version})
    bundle.save(model_path)
    lineage = {
        "run_id": parent, "run_url": tracker.run_url(parent), "model_uri": model_uri,
        "version": version, "digest": digest, "em_core_version": em_core.__version__,
    }  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            **segment_model_metadata(
                model_path, settings, outcome, bundle, assignment, champion, lineage
            ),
            **plot_metadata(plots),
        }
    )
