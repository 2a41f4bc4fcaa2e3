"""Asset checks. The blocking ones stop everything downstream (and so publication) on failure."""

import math

import dagster as dg
import pandas as pd

from em_pipeline.defs.config import (
    DEFAULT_MIN_SEGMENT_SHARE,
    DriftAriConfig,
    DriftDistanceConfig,
    DriftPsiConfig,
    DriftShareConfig,
    MinSegmentShareConfig,
    QuarantineCheckConfig,
)
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import CustomerSchemaResource, MlflowTracker, PipelineStorage
from em_pipeline.lib.artifacts import (
    DRIFT_SEGMENTS,
    DRIFT_SUMMARY,
    MODEL_JSON,
    PROFILES,
    SEGMENTS,
    SELECTION,
    SNAPSHOT,
    SUMMARY,
)


def _run_date(context: dg.AssetCheckExecutionContext) -> str:
    return context.op_execution_context.partition_key


@dg.asset_check(
    asset="raw_customers",
    blocking=True,
    partitions_def=daily_partitions,
    description="Snapshot has exactly the schema's columns with float features and "
    "unique, non-empty customer ids.",
)
def raw_schema(
    context: dg.AssetCheckExecutionContext,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
) -> dg.AssetCheckResult:
    schema = customer_schema.get()
    snap = storage.read_parquet(_run_date(context), SNAPSHOT)
    expected = [*schema.columns, "source_file"]
    problems = []
    if list(snap.columns) != expected:
        problems.append(f"columns {list(snap.columns)} != {expected}")
    else:
        for f in schema.feature_names:
            if snap[f].dtype != "float64":
                problems.append(f"{f} has dtype {snap[f].dtype}, expected float64")
        ids = snap[schema.id_column]
        if ids.isna().any() or (ids.astype(str).str.strip() == "").any():
            problems.append("empty customer ids")
        if ids.duplicated().any():
            problems.append(f"{int(ids.duplicated().sum())} duplicate customer ids")
        if snap[schema.feature_names].isna().all(axis=1).any():
            problems.append("rows with every feature missing")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "reason": "; ".join(problems) or "schema as expected",
            "problems": dg.MetadataValue.json(problems),
            "columns": list(snap.columns),
        },
    )


@dg.asset_check(
    asset="raw_customers",
    blocking=True,
    partitions_def=daily_partitions,
    description="Share of quarantined input rows is at most max_share.",
)
def quarantine_share_below_threshold(
    context: dg.AssetCheckExecutionContext, config: QuarantineCheckConfig, storage: PipelineStorage
) -> dg.AssetCheckResult:
    summary = storage.read_json(_run_date(context), SUMMARY)
    share = float(summary["quarantine_share"])
    passed = share <= config.max_share
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "reason": f"{share:.2%} of the input rows quarantined "
            f"({int(summary['n_quarantined'])}) {'<=' if passed else '>'} max_share "
            f"{config.max_share:.2%}; reasons {summary['reason_counts']}",
            "quarantine_share": share,
            "max_share": config.max_share,
            "n_quarantined": int(summary["n_quarantined"]),
            "reason_counts": dg.MetadataValue.json(summary["reason_counts"]),
        },
    )


@dg.asset_check(
    asset="segment_model",
    blocking=True,
    partitions_def=daily_partitions,
    description="Every candidate that produced a fit has a finite log-likelihood and "
    "criteria; the chosen model converged and is not degenerate.",
)
def candidates_finite_and_chosen_converged(
    context: dg.AssetCheckExecutionContext, storage: PipelineStorage
) -> dg.AssetCheckResult:
    sel = storage.read_parquet(_run_date(context), SELECTION)
    fitted = sel[~sel["degenerate"].astype(bool) & sel["error"].isna()]
    cols = ["log_likelihood", "bic", "aic", "icl"]
    nonfinite = fitted[~fitted[cols].apply(lambda c: c.map(math.isfinite)).all(axis=1)]
    chosen = sel[sel["chosen"]]
    problems = [
        f"K={r.n_components} {r.covariance_type}: non-finite fit" for r in nonfinite.itertuples()
    ]
    if len(chosen) != 1:
        problems.append(f"{len(chosen)} chosen candidates")
    else:
        c = chosen.iloc[0]
        if not bool(c["converged"]):
            problems.append(f"chosen K={c['n_components']} {c['covariance_type']} not converged")
        if bool(c["degenerate"]) or not math.isfinite(float(c["log_likelihood"])):
            problems.append("chosen candidate is degenerate or non-finite")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "reason": "; ".join(problems) or "every fit finite, chosen model converged",
            "problems": dg.MetadataValue.json(problems),
            "n_candidates": len(sel),
            "n_fitted": len(fitted),
            "n_degenerate_or_failed": len(sel) - len(fitted),
        },
    )


@dg.asset_check(
    asset="customer_segments",
    blocking=True,
    partitions_def=daily_partitions,
    description="Every valid customer of the snapshot is scored exactly once and the "
    "probabilities are finite.",
)
def segments_cover_snapshot(
    context: dg.AssetCheckExecutionContext,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
) -> dg.AssetCheckResult:
    run_date = _run_date(context)
    idc = customer_schema.id_column
    snap = storage.read_parquet(run_date, SNAPSHOT)
    seg = storage.read_parquet(run_date, SEGMENTS)
    prob_cols = [c for c in seg.columns if c.startswith("prob_segment_")]
    missing = set(snap[idc]) - set(seg[idc])
    extra = set(seg[idc]) - set(snap[idc])
    dup = int(seg[idc].duplicated().sum())
    finite = bool(pd.DataFrame(seg[prob_cols]).map(math.isfinite).all().all())
    passed = not missing and not extra and dup == 0 and finite
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "reason": f"{len(missing)} snapshot customers not scored, {len(extra)} scored "
            f"customers not in the snapshot, {dup} duplicates, probabilities "
            f"{'finite' if finite else 'NOT finite'}",
            "missing": len(missing),
            "unexpected": len(extra),
            "duplicates": dup,
            "finite_probabilities": finite,
        },
    )


@dg.asset_check(
    asset="segment_profiles",
    blocking=True,
    partitions_def=daily_partitions,
    description="No segment holds less than min_share of the customers.",
)
def min_segment_share(
    context: dg.AssetCheckExecutionContext, config: MinSegmentShareConfig, storage: PipelineStorage
) -> dg.AssetCheckResult:
    run_date = _run_date(context)
    profiles = storage.read_parquet(run_date, PROFILES)
    min_share = config.min_share
    if min_share is None:  # the share segment_model merged by (older models: the default)
        info = storage.read_json(run_date, MODEL_JSON)["info"]
        min_share = info.get("min_segment_share", DEFAULT_MIN_SEGMENT_SHARE)
    small = profiles[profiles["share"] < min_share].sort_values("share")
    shown = small if not small.empty else profiles.nsmallest(1, "share")
    relation = "<" if not small.empty else ">="
    reason = "; ".join(
        f"segment {r.segment} ({r.segment_label}) holds {r.share:.2%} of the customers "
        f"({r.size} of {int(profiles['size'].sum())}) {relation} min_share {min_share:.2%}"
        for r in shown.itertuples()
    )
    return dg.AssetCheckResult(
        passed=small.empty,
        metadata={
            "reason": reason,
            "min_share": min_share,
            "smallest_share": float(profiles["share"].min()),
            "too_small": dg.MetadataValue.json(
                {str(r.segment): float(r.share) for r in small.itertuples()}
            ),
        },
    )


# ------------------------------------------------------------------------------- drift gates
# Blocking checks on segment_drift: a failure stops published_segments, so the model is logged
# but not promoted and BI keeps the champion's tables. Each check also records its outcome on the
# model's MLflow run as the tag ``check/<name>`` ("passed" or "failed: <why>").


def _drift_gate(
    context: dg.AssetCheckExecutionContext,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
    name: str,
    value: float | None,
    threshold: float,
    *,
    upper: bool,
    what: str,
    extra: dict | None = None,
) -> dg.AssetCheckResult:
    run_date = _run_date(context)
    summary = storage.read_json(run_date, DRIFT_SUMMARY)
    if not summary["has_champion"]:
        passed, why = True, "first model: no champion to compare with"
    elif value is None or not math.isfinite(value):
        passed, why = True, f"{what} not available (nothing to compare)"
    elif upper:
        passed = value <= threshold
        why = f"{what} = {value:.4g} {'<=' if passed else '>'} max {threshold:g}"
    else:
        passed = value >= threshold
        why = f"{what} = {value:.4g} {'>=' if passed else '<'} min {threshold:g}"
    if not passed:
        context.log.warning(f"{name} failed: {why}; the model will not be promoted")
    run_id = storage.read_json(run_date, MODEL_JSON)["info"].get("mlflow_run_id")
    if run_id:
        mlflow_tracker.tracker().set_tags(
            run_id, {f"check/{name}": "passed" if passed else f"failed: {why}"}
        )
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "reason": why,
            "value": value if value is not None and math.isfinite(value) else None,
            "threshold": threshold,
            "champion_run_date": summary.get("champion_run_date") or "",
            **(extra or {}),
        },
    )


@dg.asset_check(
    asset="segment_drift",
    blocking=True,
    partitions_def=daily_partitions,
    description="Adjusted Rand index between the champion's and tonight's segments of the common "
    "customers is at least min_ari.",
)
def drift_ari_above_min(
    context: dg.AssetCheckExecutionContext,
    config: DriftAriConfig,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
) -> dg.AssetCheckResult:
    s = storage.read_json(_run_date(context), DRIFT_SUMMARY)
    if s["has_champion"] and s["n_common_customers"] == 0:
        value: float | None = -1.0  # no common customer at all: nothing can be trusted
    else:
        value = s["ari"]
    return _drift_gate(
        context, storage, mlflow_tracker, "drift_ari_above_min", value, config.min_ari,
        upper=False, what="ARI on common customers",
        extra={"n_common_customers": s["n_common_customers"]},
    )  # fmt: skip


@dg.asset_check(
    asset="segment_drift",
    blocking=True,
    partitions_def=daily_partitions,
    description="Population stability index of every feature (champion's snapshot vs tonight's) "
    "is at most max_psi.",
)
def drift_psi_below_max(
    context: dg.AssetCheckExecutionContext,
    config: DriftPsiConfig,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
) -> dg.AssetCheckResult:
    s = storage.read_json(_run_date(context), DRIFT_SUMMARY)
    return _drift_gate(
        context, storage, mlflow_tracker, "drift_psi_below_max", s["max_psi"], config.max_psi,
        upper=True, what=f"PSI of {s['max_psi_feature']}",
    )  # fmt: skip


@dg.asset_check(
    asset="segment_drift",
    blocking=True,
    partitions_def=daily_partitions,
    description="Bhattacharyya distance between each retained segment's component and its "
    "champion component is at most max_distance.",
)
def drift_distance_below_max(
    context: dg.AssetCheckExecutionContext,
    config: DriftDistanceConfig,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
) -> dg.AssetCheckResult:
    run_date = _run_date(context)
    s = storage.read_json(run_date, DRIFT_SUMMARY)
    seg = storage.read_parquet(run_date, DRIFT_SEGMENTS)
    far = seg[(seg["status"] == "retained") & (seg["distance"] > config.max_distance)]
    return _drift_gate(
        context, storage, mlflow_tracker, "drift_distance_below_max", s["max_distance"],
        config.max_distance, upper=True, what="largest distance of a retained segment",
        extra={"too_far": dg.MetadataValue.json(
            {str(r.segment_id): float(r.distance) for r in far.itertuples()}
        )},
    )  # fmt: skip


@dg.asset_check(
    asset="segment_drift",
    blocking=True,
    partitions_def=daily_partitions,
    description="No segment's share of customers changed by more than max_share_change "
    "(new segments count from 0, retired ones to 0).",
)
def drift_share_change_below_max(
    context: dg.AssetCheckExecutionContext,
    config: DriftShareConfig,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
) -> dg.AssetCheckResult:
    s = storage.read_json(_run_date(context), DRIFT_SUMMARY)
    return _drift_gate(
        context, storage, mlflow_tracker, "drift_share_change_below_max",
        s["max_abs_share_change"], config.max_share_change, upper=True,
        what="largest segment share change",
    )  # fmt: skip
