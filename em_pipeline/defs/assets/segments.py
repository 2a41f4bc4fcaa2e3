"""``customer_segments`` and ``segment_profiles``: scores and per-segment profiles."""

import dagster as dg

from em_pipeline.defs.metadata import column_schema, plot_metadata
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import MlflowTracker, PipelineStorage
from em_pipeline.lib.artifacts import (
    COMPONENTS,
    MODEL_JSON,
    PLOTS,
    PROFILES,
    SEGMENTS,
    SNAPSHOT,
)
from em_pipeline.lib.plots import plot_segment_profiles
from em_pipeline.lib.segments import (
    SegmentBundle,
    component_profiles_table,
    customer_segments_table,
    segment_profiles_table,
)


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"pandas", "parquet"},
    deps=["segment_model", "raw_customers"],
    description="customer_id, segment (stable segment id, aligned to the champion), "
    "segment_label, confidence (largest segment probability), component (most probable mixture "
    "component), prob_segment_<id> per segment (the sum of its components'), run_date.",
)
def customer_segments(
    context: dg.AssetExecutionContext, storage: PipelineStorage
) -> dg.MaterializeResult:
    run_date = context.partition_key
    bundle = SegmentBundle.load(storage.path(run_date, MODEL_JSON))
    # score the validated snapshot in original units, exactly as the MLflow pyfunc model does
    snapshot = storage.read_parquet(run_date, SNAPSHOT)
    out = customer_segments_table(bundle, snapshot, run_date)
    path = storage.write_parquet(out, run_date, SEGMENTS)
    sizes = out["segment"].value_counts().reindex(bundle.segment_ids, fill_value=0)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(out),
            "dagster/column_schema": column_schema(out),
            "path": dg.MetadataValue.path(str(path)),
            "segment_sizes": dg.MetadataValue.json({str(k): int(v) for k, v in sizes.items()}),
            "mean_confidence": float(out["confidence"].mean()),
        }
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"pandas", "parquet"},
    deps=["customer_segments", "raw_customers"],
    description="Per segment: label, size, share, mean confidence, and mean / median / missing "
    "share of each feature over the observed values in original units; and per mixture "
    "component (component_profiles.parquet, for analysts): its segment, weight, size and "
    "centre in original units.",
)
def segment_profiles(
    context: dg.AssetExecutionContext, storage: PipelineStorage, mlflow_tracker: MlflowTracker
) -> dg.MaterializeResult:
    run_date = context.partition_key
    bundle = SegmentBundle.load(storage.path(run_date, MODEL_JSON))
    snapshot = storage.read_parquet(run_date, SNAPSHOT)
    segments = storage.read_parquet(run_date, SEGMENTS)
    profiles = segment_profiles_table(bundle, snapshot, segments, run_date)
    path = storage.write_parquet(profiles, run_date, PROFILES)
    components = component_profiles_table(bundle, segments, run_date)
    storage.write_parquet(components, run_date, COMPONENTS)
    plots = storage.partition_dir(run_date) / PLOTS
    plots.mkdir(exist_ok=True)
    plot = plot_segment_profiles(
        profiles, bundle.schema.feature_names, plots / "segment_profiles.png"
    )
    run_id = bundle.info.get("mlflow_run_id")
    if run_id:
        tracker = mlflow_tracker.tracker()
        tracker.log_artifacts(run_id, [plot], "plots")
        tracker.log_table(run_id, profiles, "segment_profiles", "profiles")
        tracker.log_table(run_id, components, "component_profiles", "profiles")
    shown = profiles[["segment", "segment_label", "size", "share"]]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(profiles),
            "path": dg.MetadataValue.path(str(path)),
            "profiles": dg.MetadataValue.md(shown.to_markdown(index=False)),
            "min_share": float(profiles["share"].min()),
            "components": dg.MetadataValue.md(
                components[["component", "segment", "weight", "size"]].to_markdown(index=False)
            ),
            **plot_metadata([plot]),
        }
    )
