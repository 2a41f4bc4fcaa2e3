"""``segment_drift``: tonight's segmentation against the latest published run up to its date.

That run is the champion on an ordinary night, the version it replaces for a re-run, and the
nearest earlier published date for a back-fill (compared on its published hard segments, so
expected transitions equal the hard ones when it is not the champion); never a later date.
Segment status and distances are relative to the champion model, whose ids tonight's model carries.

Its blocking checks (``em_pipeline.defs.checks``) gate ``published_segments``: when one fails, the
model stays logged in MLflow (tag ``promoted=false`` plus one ``check/<name>`` tag per check with
the reason) but is not promoted, and BI keeps reading the champion's tables.
"""

import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import Champion, MlflowTracker, PipelineStorage, Warehouse
from em_pipeline.lib.artifacts import (
    ALIGNMENT,
    DRIFT_FEATURES,
    DRIFT_SEGMENTS,
    DRIFT_SUMMARY,
    DRIFT_TRANSITIONS,
    MODEL_JSON,
    SEGMENTS,
    SNAPSHOT,
)
from em_pipeline.lib.drift_report import drift_report
from em_pipeline.lib.plots import plot_transitions
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
    champion = warehouse.load_champion()
    if (None if champion is None else champion.run_date) != expected_champion:
        raise dg.Failure(
            f"the champion changed since segment_model ran (was {expected_champion}, now "
            f"{None if champion is None else champion.run_date}): re-run from segment_model"
        )
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
    s = report.summary

    run_id = bundle.info.get("mlflow_run_id")
    if run_id:
        tracker = mlflow_tracker.tracker()
        metrics = {
            f"drift_{k}": s[k]
            for k in (
                "ari",
                "stayed_share",
                "expected_stayed_share",
                "max_psi",
                "max_distance",
                "max_abs_share_change",
                "n_common_customers",
                "n_new_customers",
                "n_gone_customers",
                "n_new_segments",
                "n_retired_segments",
            )
        }
        metrics.update({f"psi_{r.feature}": r.psi for r in report.features.itertuples()})
        for r in report.segments.itertuples():
            metrics[f"share_change_segment_{r.segment_id}"] = r.share_change
            metrics[f"distance_segment_{r.segment_id}"] = r.distance
        tracker.log_metrics(run_id, metrics)
        tracker.set_tags(
            run_id,
            {"champion_run_date": expected_champion or "", "compared_with": reference or ""},
        )
        for name, df in (
            ("drift_transitions", report.transitions),
            ("drift_segments", report.segments),
            ("drift_features", report.features),
            ("drift_summary", report.summary_frame()),
        ):
            tracker.log_table(run_id, df, name, "drift")
        if len(report.transitions):
            with tempfile.TemporaryDirectory() as tmp:
                plot = plot_transitions(
                    report.transitions,
                    Path(tmp) / "transitions.png",
                    f"Customers by segment: {reference} -> {run_date}",
                    labels=dict(zip(report.segments["segment_id"], report.segments["label"],
                                    strict=True)),
                )  # fmt: skip
                tracker.log_artifacts(run_id, [plot], "plots")

    if reference is None:
        context.log.info(
            "no published run up to this date to compare with; drift checks pass trivially"
        )
    else:
        context.log.info(
            f"vs published {reference}: {s['n_common_customers']} common customers, "
            f"ARI {s['ari']:.3f}, stayed {s['stayed_share']:.1%}, max PSI {_fmt(s['max_psi'])} "
            f"({s['max_psi_feature']}), max distance {_fmt(s['max_distance'])}, "
            f"{s['n_new_segments']} new / {s['n_retired_segments']} retired segment(s)"
        )
    matrix = (
        report.transitions.pivot(index="from_segment", columns="to_segment", values="n_customers")
        if len(report.transitions)
        else None
    )
    return dg.MaterializeResult(
        metadata={
            **{f"path/{k}": dg.MetadataValue.path(str(v)) for k, v in paths.items()},
            "summary": dg.MetadataValue.json(s),
            "transition_matrix": dg.MetadataValue.md(
                matrix.to_markdown() if matrix is not None else "(no champion yet)"
            ),
            "segments": dg.MetadataValue.md(
                report.segments[
                    ["segment_id", "status", "label", "share_before", "share_after", "distance"]
                ].to_markdown(index=False)
            ),
            "psi": dg.MetadataValue.md(
                report.features[["feature", "psi"]].to_markdown(index=False)
            ),
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


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"
