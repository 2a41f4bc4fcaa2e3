"""What one promotion publishes: the rows of ``segment_runs`` and ``segment_champion``, and the
back-fill rule.

**Back-fills.** The current tables (``customer_segments``, ``segment_profiles``,
``segment_champion``) and the registry alias follow the **latest** published run date. A run whose
date is before the champion's is a back-fill: it adds its rows to the history tables (and so to
the derived ``segment_history`` and ``segment_registry``) but never moves the current tables or the
alias back. A run of the champion's own date or a later one replaces them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from em_pipeline.lib.drift_report import PROB_PREFIX
from em_pipeline.lib.segments import SegmentBundle

HISTORY_COLUMNS = ["run_date", "customer_id", "segment", "segment_label", "confidence"]


def is_backfill(run_date: str, champion_run_date: str | None) -> bool:
    """True when ``run_date`` is older than the published champion's date."""
    return champion_run_date is not None and run_date < champion_run_date


def reference_run_date(run_date: str, published_dates: list[str]) -> str | None:
    """The published run a night is compared with: its own date's published version when it
    is a re-run (what publishing it would replace), else the latest published date before it;
    never a later date."""
    earlier = [d for d in published_dates if d <= run_date]
    return max(earlier) if earlier else None


def one_hot_posteriors(history: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """A published night's hard segments from ``customer_segments_history`` as posteriors (1 for
    the published segment): what a drift report can compare with when that night is no longer
    the champion (the history keeps labels, not probabilities)."""
    out = history.rename(columns={"customer_id": id_column})[[id_column, "segment"]].copy()
    out["segment"] = out["segment"].astype("int64")
    for sid in sorted(out["segment"].unique()):
        out[f"{PROB_PREFIX}{sid}"] = (out["segment"] == sid).astype("float64")
    return out.reset_index(drop=True)


def customer_history(segments: pd.DataFrame, id_column: str) -> pd.DataFrame:
    return segments.rename(columns={id_column: "customer_id"})[HISTORY_COLUMNS]


def run_row(
    bundle: SegmentBundle,
    run_date: str,
    *,
    n_customers: int,
    n_quarantined: int,
    dagster_run_id: str,
    published_at: datetime,
    backfill: bool,
) -> pd.DataFrame:
    """The one ``segment_runs`` row of a published night."""
    info: dict[str, Any] = bundle.info
    return pd.DataFrame(
        [
            {
                "run_date": run_date,
                "n_customers": n_customers,
                "n_quarantined": n_quarantined,
                "n_segments": bundle.n_segments,
                "segment_ids": _ids(bundle.segment_ids),
                "covariance_type": str(bundle.model.covariance_type),
                "criterion": str(info.get("criterion") or ""),
                "em_core_version": info.get("em_core_version"),
                "data_digest": info.get("data_digest"),
                "mlflow_run_id": info.get("mlflow_run_id"),
                "model_version": str(info.get("model_version") or ""),
                "dagster_run_id": dagster_run_id,
                "published_at": published_at,
                "champion_run_date": info.get("champion_run_date"),
                "warm_start": bool(info.get("warm_start")),
                "best_init": str(info.get("best_init") or ""),
                "new_segment_ids": _ids(info.get("new_segment_ids") or []),
                "retired_segment_ids": _ids(info.get("retired_segment_ids") or []),
                "backfill": backfill,
            }
        ]
    )


def champion_row(
    bundle: SegmentBundle,
    model_json: str,
    run_date: str,
    *,
    dagster_run_id: str,
    published_at: datetime,
) -> pd.DataFrame:
    """The one-row ``segment_champion`` table: the model behind the current tables."""
    info: dict[str, Any] = bundle.info
    return pd.DataFrame(
        [
            {
                "run_date": run_date,
                "model_version": str(info.get("model_version") or ""),
                "model_uri": str(info.get("model_uri") or ""),
                "mlflow_run_id": str(info.get("mlflow_run_id") or ""),
                "dagster_run_id": dagster_run_id,
                "promoted_at": published_at,
                "segment_ids": _ids(bundle.segment_ids),
                "model_json": model_json,
            }
        ]
    )


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids))
