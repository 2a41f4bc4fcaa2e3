"""Drift and migration report: the champion's published segmentation vs tonight's.

Tables (one set per run date; ``run_date`` = tonight, ``champion_run_date`` = the run whose
tables BI currently reads):

- ``drift_transitions``: the customer-level transition matrix on the customers present in both,
  long format, one row per (from_segment, to_segment) pair: ``n_customers`` (hard labels; sums to
  the number of common customers), ``expected_customers`` (Σ_i p_champion(i, from) ·
  p_tonight(i, to) from the posteriors; also sums to it) and ``share_of_from`` (row-normalised
  hard count);
- ``drift_segments``: per segment id (retained, new or retired), size and share before and after,
  ``share_change``, the Bhattacharyya ``distance`` between the retained segment's component and
  its champion component, and for every segment the nearest champion segment and its distance;
- ``drift_features``: per feature the population stability index (champion's snapshot →
  tonight's, NaN as its own bin), missing share and median before and after;
- ``summary`` (one row, ``drift_runs``): counts of common / new / gone customers, the adjusted
  Rand index on the common customers, the share of common customers that stayed, the largest PSI,
  distance and share change, the numbers of new and retired segments.

Every statistic comes from em_core (transition_matrix, expected_transitions, adjusted_rand_index,
population_stability_index; distances from the alignment); this module only joins tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PROB_PREFIX = "prob_segment_"


@dataclass(frozen=True)
class DriftReport:
    summary: dict[str, Any]
    transitions: pd.DataFrame
    segments: pd.DataFrame
    features: pd.DataFrame

    def summary_frame(self) -> pd.DataFrame:
        return summary_frame(self.summary)


SUMMARY_DTYPES = {
    "run_date": "object",
    "champion_run_date": "object",
    "has_champion": "bool",
    "n_customers": "int64",
    "n_champion_customers": "int64",
    "n_common_customers": "int64",
    "n_new_customers": "int64",
    "n_gone_customers": "int64",
    "ari": "float64",
    "stayed_share": "float64",
    "expected_stayed_share": "float64",
    "max_psi": "float64",
    "max_psi_feature": "string",
    "max_distance": "float64",
    "max_abs_share_change": "float64",
    "n_segments": "int64",
    "n_new_segments": "int64",
    "n_retired_segments": "int64",
}


def summary_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """The one-row ``drift_runs`` table with fixed column types (None -> NaN / NULL)."""
    row = {k: summary.get(k) for k in SUMMARY_DTYPES}
    df = pd.DataFrame([row])
    for k, t in SUMMARY_DTYPES.items():
        if t == "float64":
            df[k] = pd.to_numeric(df[k], errors="coerce").astype("float64")
        elif t != "object":
            df[k] = df[k].astype(t)
    return df


def prob_columns(df: pd.DataFrame) -> dict[int, str]:
    """segment id -> probability column, ascending id."""
    cols = {int(c[len(PROB_PREFIX) :]): c for c in df.columns if c.startswith(PROB_PREFIX)}
    return dict(sorted(cols.items()))


def _finite_max(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return max(vals) if vals else None


def drift_report(
    *,
    run_date: str,
    champion_run_date: str | None,
    id_column: str,
    features: list[str],
    after: pd.DataFrame,
    alignment: pd.DataFrame,
    after_snapshot: pd.DataFrame,
    before: pd.DataFrame | None = None,
    before_snapshot: pd.DataFrame | None = None,
    n_bins: int = 10,
) -> DriftReport:
    """Compare tonight's ``after`` segments with the champion's published ``before`` segments.

    ``before`` None (no champion yet) gives empty transitions, NaN PSI and shares from 0.
    """
    keys = {"run_date": run_date, "champion_run_date": champion_run_date}
    if before is not None:
        transitions, customers = _transitions(before, after, id_column, keys)
    else:
        transitions = pd.DataFrame({c: pd.Series(dtype=t) for c, t in TRANSITION_DTYPES.items()})
        customers = {
            "n_common_customers": 0,
            "n_new_customers": len(after),
            "n_gone_customers": 0,
            "ari": float("nan"),
            "stayed_share": float("nan"),
            "expected_stayed_share": float("nan"),
        }
    segments = _segment_table(alignment, before, after, keys)
    feats = _feature_table(features, after_snapshot, before_snapshot, keys, n_bins)
    psi = feats.set_index("feature")["psi"]
    retained = segments[segments["status"] == "retained"]
    max_psi = _finite_max(psi)
    summary = {
        **keys,
        "has_champion": before is not None,
        "n_customers": len(after),
        "n_champion_customers": len(before) if before is not None else 0,
        **customers,
        "max_psi": max_psi,
        "max_psi_feature": (str(psi.astype(float).idxmax()) if max_psi is not None else None),
        "max_distance": _finite_max(retained["distance"]),
        "max_abs_share_change": (
            _finite_max(segments["share_change"].abs()) if before is not None else None
        ),
        "n_segments": len(prob_columns(after)),
        "n_new_segments": int((segments["status"] == "new").sum()),
        "n_retired_segments": int((segments["status"] == "retired").sum()),
    }
    return DriftReport(summary=summary, transitions=transitions, segments=segments, features=feats)


def _transitions(
    before: pd.DataFrame, after: pd.DataFrame, id_column: str, keys: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The transition table on the customers in both, and the summary's customer figures."""
    from em_core import adjusted_rand_index, expected_transitions, transition_matrix

    before_cols, after_cols = prob_columns(before), prob_columns(after)
    before_ids, after_ids = list(before_cols), list(after_cols)
    common = before[[id_column, "segment", *before_cols.values()]].merge(
        after[[id_column, "segment", *after_cols.values()]],
        on=id_column,
        suffixes=("_before", "_after"),
    )
    n_common = len(common)
    pos_b = {s: i for i, s in enumerate(before_ids)}
    pos_a = {s: i for i, s in enumerate(after_ids)}
    hard = transition_matrix(
        common["segment_before"].map(pos_b).to_numpy(),
        common["segment_after"].map(pos_a).to_numpy(),
        len(before_ids),
        len(after_ids),
    )
    pb = common[[_suffixed(c, "_before", after_cols) for c in before_cols.values()]]
    pa = common[[_suffixed(c, "_after", before_cols) for c in after_cols.values()]]
    soft = expected_transitions(pb.to_numpy(dtype=float), pa.to_numpy(dtype=float))
    rows = []
    for i, s_from in enumerate(before_ids):
        row_total = int(hard[i].sum())
        for j, s_to in enumerate(after_ids):
            rows.append(
                {
                    **keys,
                    "from_segment": s_from,
                    "to_segment": s_to,
                    "n_customers": int(hard[i, j]),
                    "expected_customers": float(soft[i, j]),
                    "share_of_from": hard[i, j] / row_total if row_total else np.nan,
                }
            )
    nan = float("nan")
    stayed = common["segment_before"] == common["segment_after"]
    kept = set(before_ids) & set(after_ids)
    before_customers, after_customers = set(before[id_column]), set(after[id_column])
    customers = {
        "n_common_customers": n_common,
        "n_new_customers": len(after_customers - before_customers),
        "n_gone_customers": len(before_customers - after_customers),
        "ari": (
            float(adjusted_rand_index(common["segment_before"], common["segment_after"]))
            if n_common
            else nan
        ),
        "stayed_share": float(stayed.mean()) if n_common else nan,
        "expected_stayed_share": (
            float(sum(soft[pos_b[s], pos_a[s]] for s in kept)) / n_common if n_common else nan
        ),
    }
    return pd.DataFrame(rows, columns=TRANSITION_COLUMNS), customers


def _segment_table(
    alignment: pd.DataFrame,
    before: pd.DataFrame | None,
    after: pd.DataFrame,
    keys: dict[str, Any],
) -> pd.DataFrame:
    """One row per segment id of the alignment: sizes, shares, distances."""
    size_after = after["segment"].value_counts()
    size_before = (
        before["segment"].value_counts() if before is not None else pd.Series(dtype="int64")
    )
    n_after, n_before = len(after), (len(before) if before is not None else 0)
    rows = []
    for r in alignment.itertuples(index=False):
        sid = int(r.segment_id)
        sb, sa = int(size_before.get(sid, 0)), int(size_after.get(sid, 0))
        share_b = sb / n_before if n_before else 0.0
        share_a = sa / n_after if n_after else 0.0
        rows.append(
            {
                **keys,
                "segment_id": sid,
                "status": r.status,
                "label": r.label,
                "size_before": sb,
                "size_after": sa,
                "share_before": share_b,
                "share_after": share_a,
                "share_change": share_a - share_b,
                "distance": float(r.distance) if pd.notna(r.distance) else np.nan,
                "nearest_champion_segment": (
                    int(r.nearest_champion_segment)
                    if pd.notna(r.nearest_champion_segment)
                    else None
                ),
                "nearest_distance": (
                    float(r.nearest_distance) if pd.notna(r.nearest_distance) else np.nan
                ),
            }
        )
    segments = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    segments["nearest_champion_segment"] = segments["nearest_champion_segment"].astype("Int64")
    return segments


def _feature_table(
    features: list[str],
    after_snapshot: pd.DataFrame,
    before_snapshot: pd.DataFrame | None,
    keys: dict[str, Any],
    n_bins: int,
) -> pd.DataFrame:
    """One row per feature: PSI (champion's snapshot → tonight's), missing shares, medians."""
    from em_core import population_stability_index

    rows = []
    for f in features:
        cur = after_snapshot[f].to_numpy(dtype=float)
        ref = None if before_snapshot is None else before_snapshot[f].to_numpy(dtype=float)
        rows.append(
            {
                **keys,
                "feature": f,
                "psi": (
                    population_stability_index(ref, cur, n_bins=n_bins)
                    if ref is not None and ref.size
                    else np.nan
                ),
                "missing_share_before": float(np.isnan(ref).mean()) if ref is not None else np.nan,
                "missing_share_after": float(np.isnan(cur).mean()),
                "median_before": (
                    float(np.nanmedian(ref))
                    if ref is not None and (~np.isnan(ref)).any()
                    else np.nan
                ),
                "median_after": float(np.nanmedian(cur)) if (~np.isnan(cur)).any() else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)


def _suffixed(col: str, suffix: str, other: dict[int, str]) -> str:
    """Column name after the merge: suffixed only when both sides had the column."""
    return f"{col}{suffix}" if col in other.values() else col


TRANSITION_DTYPES = {
    "run_date": "object",
    "champion_run_date": "object",
    "from_segment": "int64",
    "to_segment": "int64",
    "n_customers": "int64",
    "expected_customers": "float64",
    "share_of_from": "float64",
}
TRANSITION_COLUMNS = list(TRANSITION_DTYPES)
SEGMENT_COLUMNS = [
    "run_date",
    "champion_run_date",
    "segment_id",
    "status",
    "label",
    "size_before",
    "size_after",
    "share_before",
    "share_after",
    "share_change",
    "distance",
    "nearest_champion_segment",
    "nearest_distance",
]
FEATURE_COLUMNS = [
    "run_date",
    "champion_run_date",
    "feature",
    "psi",
    "missing_share_before",
    "missing_share_after",
    "median_before",
    "median_after",
]
