"""How a drift report is logged (MLflow metrics, tags, tables, the transitions plot) and told
(one log line). The numbers come from :mod:`em_pipeline.lib.drift_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from em_pipeline.lib.drift_report import DriftReport
from em_pipeline.lib.plots import plot_transitions

SUMMARY_METRICS = (
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


def drift_metrics(report: DriftReport) -> dict[str, Any]:
    """``drift_<summary>``, ``psi_<feature>``, ``share_change_segment_<id>``,
    ``distance_segment_<id>``."""
    metrics = {f"drift_{k}": report.summary[k] for k in SUMMARY_METRICS}
    metrics |= {f"psi_{r.feature}": r.psi for r in report.features.itertuples()}
    for r in report.segments.itertuples():
        metrics[f"share_change_segment_{r.segment_id}"] = r.share_change
        metrics[f"distance_segment_{r.segment_id}"] = r.distance
    return metrics


def transitions_plot(report: DriftReport, reference: str | None, run_date: str, folder: Path):
    """The transitions heat map as ``folder/transitions.png``, or None without transitions."""
    if not len(report.transitions):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    labels = dict(zip(report.segments["segment_id"], report.segments["label"], strict=True))
    return plot_transitions(
        report.transitions,
        folder / "transitions.png",
        f"Customers by segment: {reference} -> {run_date}",
        labels=labels,
    )


def log_drift(
    tracker: Any,
    run_id: str,
    report: DriftReport,
    *,
    champion_run_date: str | None,
    reference: str | None,
    plot: Path | None,
) -> None:
    """Metrics, tags, the four tables and the plot on the night's MLflow run."""
    tracker.log_metrics(run_id, drift_metrics(report))
    tracker.set_tags(
        run_id, {"champion_run_date": champion_run_date or "", "compared_with": reference or ""}
    )
    for name, df in (
        ("drift_transitions", report.transitions),
        ("drift_segments", report.segments),
        ("drift_features", report.features),
        ("drift_summary", report.summary_frame()),
    ):
        tracker.log_table(run_id, df, name, "drift")
    if plot is not None:
        tracker.log_artifacts(run_id, [plot], "plots")


def drift_line(summary: dict[str, Any], reference: str | None) -> str:
    """The report in one log line."""
    if reference is None:
        return "no published run up to this date to compare with; drift checks pass trivially"
    s = summary
    return (
        f"vs published {reference}: {s['n_common_customers']} common customers, "
        f"ARI {s['ari']:.3f}, stayed {s['stayed_share']:.1%}, max PSI {_fmt(s['max_psi'])} "
        f"({s['max_psi_feature']}), max distance {_fmt(s['max_distance'])}, "
        f"{s['n_new_segments']} new / {s['n_retired_segments']} retired segment(s)"
    )


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"
