"""Dagster metadata helpers shared by the assets (kept out of ``lib/``, which has no Dagster)."""

import base64
from pathlib import Path

import dagster as dg

from em_pipeline.lib.segment_fit import SHOWN_COLUMNS


def column_schema(df) -> dg.TableSchema:
    """``dagster/column_schema`` metadata of a data frame."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()]
    )


def segment_model_metadata(
    model_path, settings, outcome, bundle, assignment, champion, mlflow: dict
) -> dict:
    """``segment_model``'s metadata: the chosen model, the selection table, ids and lineage.
    ``mlflow`` holds run_id, run_url, model_uri, version, digest and em_core_version."""
    k, cov = outcome.chosen
    return {
        "path": dg.MetadataValue.path(str(model_path)),
        "chosen_n_components": k,
        "chosen_covariance_type": cov,
        "n_segments": bundle.n_segments,
        "criterion": settings.criterion,
        f"chosen_{settings.criterion}": float(outcome.chosen_row[settings.criterion]),
        "n_candidates": len(outcome.table),
        "n_failed_candidates": outcome.n_failed,
        "selection_table": dg.MetadataValue.md(
            outcome.table[SHOWN_COLUMNS].to_markdown(index=False)
        ),
        "segment_labels": dg.MetadataValue.json(
            {str(s): v for s, v in sorted(bundle.labels.items())}
        ),
        "chosen_best_init": outcome.chosen_init,
        "warm_start": outcome.warm_summary,
        "champion_run_date": "" if champion is None else champion.run_date,
        "segment_alignment": dg.MetadataValue.md(assignment.alignment.to_markdown(index=False)),
        "new_segment_ids": dg.MetadataValue.json(assignment.new_ids),
        "retired_segment_ids": dg.MetadataValue.json(assignment.retired_ids),
        "mlflow_run_id": mlflow["run_id"],
        "mlflow_run_url": dg.MetadataValue.url(mlflow["run_url"]) if mlflow["run_url"] else "",
        "mlflow_model_uri": mlflow["model_uri"],
        "registered_model_version": mlflow["version"] or "",
        "data_digest": mlflow["digest"],
        "em_core_version": mlflow["em_core_version"],
    }


def plot_metadata(paths: list[Path]) -> dict:
    """Each PNG as ``plot/<name>``: the image itself in Markdown (shown in the asset's page, so an
    operator need not open MLflow) and ``plot_path/<name>``, its file."""
    out: dict = {}
    for p in paths:
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        out[f"plot/{Path(p).stem}"] = dg.MetadataValue.md(
            f"![{Path(p).stem}](data:image/png;base64,{data})"
        )
        out[f"plot_path/{Path(p).stem}"] = dg.MetadataValue.path(str(p))
    return out


def drift_metadata(report) -> dict:
    """``segment_drift``'s metadata: the summary, the transition matrix, segments and PSI."""
    t = report.transitions
    matrix = (
        t.pivot(index="from_segment", columns="to_segment", values="n_customers").to_markdown()
        if len(t)
        else "(nothing published before this date)"
    )
    shown = ["segment_id", "status", "label", "share_before", "share_after", "distance"]
    return {
        "summary": dg.MetadataValue.json(report.summary),
        "transition_matrix": dg.MetadataValue.md(matrix),
        "segments": dg.MetadataValue.md(report.segments[shown].to_markdown(index=False)),
        "psi": dg.MetadataValue.md(report.features[["feature", "psi"]].to_markdown(index=False)),
    }
