"""``segment_drift``: tonight's segmentation against the latest published run up to its date.

That run is the champion on an ordinary night, the version it replaces for a re-run, and the
nearest earlier published date for a back-fill (compared on its published hard segments, so
expected transitions equal the hard ones when it is not the champion); never a later date.
Segment status and distances are relative to the champion model, whose ids tonight's model carries.

Its blocking checks (``em_pipeline.defs.checks``) gate ``published_segments``: when one fails, the
model stays logged in MLflow (tag ``promoted=false`` plus one ``check/<name>`` tag per check with
the reason) but is not promoted, and BI keeps reading the champion's tables.
"""

import dagster as dg
import pandas as pd

from em_pipeline.defs.metadata import drift_metadata, plot_metadata
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import Champion, MlflowTracker, PipelineStorage, Warehouse
from em_pipeline.lib.artifacts import (
    ALIGNMENT,
    DRIFT_FEATURES,
    DRIFT_SEGMENTS,
    DRIFT_SUMMARY,
    DRIFT_TRANSITIONS,
    MODEL_JSON,
    PLOTS,
    SEGMENTS,
    SNAPSHOT,
)
from em_pipeline.lib.drift_logging import drift_line, log_drift, transitions_plot
from em_pipeline.lib.drift_report import drift_report
from em_pipeline.lib.publication import one_hot_posteriors, reference_run_date
from em_pipeline.lib.segments import SegmentBundle


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"pandas", "mlflow"},
    deps=["segment_model", "customer_segments", "segment_profiles"],
    description="Drift and migration report against the champion (the published model): "
    "transition matrix on the common customers (hard and expected from posteriors), share change "
    "and component distance per segment, adjusted Rand index, PSI per feature. Logged to MLflow; "
    "published with the tables when the model is promoted. Its blocking checks gate promotion.",
)
def segment_drift(
    context: dg.AssetExecutionContext,
    storage: PipelineStorage,
    warehouse: Warehouse,
    mlflow_tracker: MlflowTracker,
) -> dg.MaterializeResult:
    run_date = context.partition_key
    bundle = SegmentBundle.load(storage.path(run_date, MODEL_JSON))
    schema = bundle.schema
    expected_champion = bundle.info.get("champion_run_date")
    champion = warehouse.expect_champion(expected_champion)
    after = storage.read_parquet(run_date, SEGMENTS)
    reference = reference_run_date(run_date, warehouse.published_run_dates())
    before = _published_segments(warehouse, champion, reference, schema.id_column)
    before_snapshot = None
    if reference is not None:
        ref = storage.path(reference, SNAPSHOT)
        if ref.exists():
            before_snapshot = storage.read_parquet(reference, SNAPSHOT)
        else:
            context.log.warning(
                f"the snapshot of {reference} {ref} is gone: PSI per feature cannot be computed"
            )
    report = drift_report(
        run_date=run_date,
        champion_run_date=reference,
        id_column=schema.id_column,
        features=schema.feature_names,
        after=after,
        alignment=storage.read_parquet(run_date, ALIGNMENT),
        after_snapshot=storage.read_parquet(run_date, SNAPSHOT),
        before=before,
        before_snapshot=before_snapshot,
    )
    paths = {
        "transitions": storage.write_parquet(report.transitions, run_date, DRIFT_TRANSITIONS),
        "segments": storage.write_parquet(report.segments, run_date, DRIFT_SEGMENTS),
        "features": storage.write_parquet(report.features, run_date, DRIFT_FEATURES),
    }
    storage.write_json(report.summary, run_date, DRIFT_SUMMARY)
    plot = transitions_plot(report, reference, run_date, storage.partition_dir(run_date) / PLOTS)
    run_id = bundle.info.get("mlflow_run_id")
    if run_id:
        log_drift(
            mlflow_tracker.tracker(), run_id, report,
            champion_run_date=expected_champion, reference=reference, plot=plot,
        )  # fmt: skip
    context.log.info(drift_line(report.summary, reference))
    return dg.MaterializeResult(
        metadata={
            **{f"path/{k}": dg.MetadataValue.path(str(v)) for k, v in paths.items()},
            **drift_metadata(report),
            **plot_metadata([plot] if plot is not None else []),
        }
    )


def _published_segments(
    warehouse: Warehouse, champion: Champion | None, reference: str | None, id_column: str
) -> pd.DataFrame | None:
    """The published segments of ``reference``: the current table (with posteriors) when it is
    the champion's date, else its history rows with one-hot posteriors."""
    if reference is None:
        return None
    if champion is not None and reference == champion.run_date:
        return warehouse.read("customer_segments")
    history = warehouse.read_history("customer_segments_history", reference)
    return None if history is None else one_hot_posteriors(history, id_column)
