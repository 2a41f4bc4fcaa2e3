"""Stable segment ids across nightly refits, and the segment registry.

Tonight's model is aligned to the champion (the model behind the published tables) with
:func:`em_core.align_labels` (Hungarian assignment on the Bhattacharyya distances of
:func:`em_core.component_distances`; both models live in the champion's feature space, see
``segment_model``). Then:

- a component matched to a champion component keeps that component's segment id and label,
  unless the two are further apart than ``max_match_distance`` (then it is a new segment and the
  champion's one is retired);
- an unmatched component (tonight has more components) gets a **new** id: one more than the
  largest id ever registered, so a retired id is never reused; new ids are handed out in order of
  the label feature (spend), and a new label is made unique by appending ``(segment <id>)``;
- a champion segment that nothing matched is **retired** (``retired_at`` = tonight's run date).

The registry table (``segment_id, label, first_seen, last_seen, retired_at``) is proposed here and
written by the publish step only when the model is promoted, so a rejected night leaves it as is.
No numerical code: every distance and the assignment come from em_core.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.segments import SegmentBundle, segment_labels, segment_order

REGISTRY_COLUMNS = ["segment_id", "label", "first_seen", "last_seen", "retired_at"]
ALIGNMENT_COLUMNS = [
    "segment_id",
    "status",
    "label",
    "component",
    "champion_component",
    "distance",
    "nearest_champion_segment",
    "nearest_distance",
]


@dataclass(frozen=True)
class IdAssignment:
    """Outcome of :func:`assign_segment_ids`."""

    component_to_segment: list[int]
    labels: dict[int, str]
    alignment: pd.DataFrame  # ALIGNMENT_COLUMNS: one row per tonight's segment + retired ones
    registry: pd.DataFrame  # REGISTRY_COLUMNS: the registry after tonight, if promoted

    @property
    def new_ids(self) -> list[int]:
        return [int(s) for s in self.alignment.loc[self.alignment["status"] == "new", "segment_id"]]

    @property
    def retired_ids(self) -> list[int]:
        a = self.alignment
        return [int(s) for s in a.loc[a["status"] == "retired", "segment_id"]]


def iso_date(v: Any) -> str | None:
    """A date-like value as ``YYYY-MM-DD`` (None for missing)."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, str):
        return v[:10]
    if isinstance(v, dt.datetime | pd.Timestamp):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if pd.isna(v):
        return None
    return str(v)[:10]


def normalise_registry(registry: pd.DataFrame | None) -> pd.DataFrame:
    """Registry with int ids, str labels and ISO-string dates (as read back from DuckDB)."""
    if registry is None or registry.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REGISTRY_COLUMNS})
    out = pd.DataFrame(
        {
            "segment_id": registry["segment_id"].astype("int64"),
            "label": registry["label"].astype(str),
            **{c: registry[c].map(iso_date).astype(object) for c in REGISTRY_COLUMNS[2:]},
        }
    )
    return out.sort_values("segment_id").reset_index(drop=True)


def first_night(
    model: Any, schema: CustomerSchema, run_date: str, registry: pd.DataFrame | None = None
) -> IdAssignment:
    """No champion: ids by ascending label feature (spend); ids start after any registered id."""
    registry = normalise_registry(registry)
    offset = int(registry["segment_id"].max()) + 1 if len(registry) else 0
    order = segment_order(model.means_, schema)
    labels = segment_labels(model.means_, order, schema)
    mapping = [offset + r for r in order]
    label_by_id = {offset + r: labels[r] for r in range(len(order))}
    rows = [
        {
            "segment_id": sid,
            "status": "new",
            "label": label_by_id[sid],
            "component": comp,
            "champion_component": None,
            "distance": np.nan,
            "nearest_champion_segment": None,
            "nearest_distance": np.nan,
        }
        for comp, sid in enumerate(mapping)
    ]
    new_rows = pd.DataFrame(
        [_reg_row(sid, label_by_id[sid], run_date) for sid in sorted(mapping)],
        columns=REGISTRY_COLUMNS,
    )
    # registered ids that are not tonight's (a warehouse without a champion row) are retired
    old = registry.copy()
    old.loc[old["retired_at"].isna(), "retired_at"] = run_date
    return IdAssignment(
        component_to_segment=mapping,
        labels=label_by_id,
        alignment=_alignment_frame(rows),
        registry=_registry_frame(pd.concat([old, new_rows], ignore_index=True)),
    )


def assign_segment_ids(
    model: Any,
    champion: SegmentBundle | None,
    schema: CustomerSchema,
    run_date: str,
    *,
    registry: pd.DataFrame | None = None,
    max_match_distance: float | None = None,
) -> IdAssignment:
    """Segment ids of ``model``'s components, aligned to ``champion`` (see the module docstring).

    ``model`` and ``champion.model`` must be expressed in the same feature space.
    """
    from em_core import align_labels, component_distances

    if champion is None:
        return first_night(model, schema, run_date, registry)
    registry = normalise_registry(registry)
    known = {int(s): lab for s, lab in zip(registry["segment_id"], registry["label"], strict=True)}
    champ_ids = champion.component_to_segment
    for sid in champ_ids:  # a champion from before the registry existed
        if sid not in known:
            known[sid] = champion.labels[sid]
            registry = pd.concat(
                [
                    registry,
                    pd.DataFrame(
                        [_reg_row(sid, champion.labels[sid], champion.info.get("run_date"))],
                        columns=REGISTRY_COLUMNS,
                    ),
                ],
                ignore_index=True,
            )
    perm = np.asarray(align_labels(model, champion.model), dtype=np.int64)
    dist = np.asarray(component_distances(model, champion.model), dtype=float)
    k = int(model.n_components)
    mapping: list[int | None] = [None] * k
    rows: list[dict] = []
    matched_champion: set[int] = set()
    for i in range(k):
        j = int(perm[i])
        if j >= 0 and (max_match_distance is None or dist[i, j] <= max_match_distance):
            mapping[i] = champ_ids[j]
            matched_champion.add(j)
    next_id = max([*known, *champ_ids, -1]) + 1
    # new components get fresh ids in order of the label feature (spend)
    rank = segment_order(model.means_, schema)
    fresh_labels = segment_labels(model.means_, rank, schema)
    new_components = sorted((i for i in range(k) if mapping[i] is None), key=lambda i: rank[i])
    labels: dict[int, str] = {}
    for i in range(k):
        if mapping[i] is not None:
            labels[mapping[i]] = known[mapping[i]]
    used = set(labels.values())
    for i in new_components:
        mapping[i] = next_id
        label = fresh_labels[rank[i]]
        if label in used:
            label = f"{label} (segment {next_id})"
        labels[next_id] = label
        used.add(label)
        next_id += 1
    ids = [int(m) for m in mapping if m is not None]
    for i in range(k):
        j = int(perm[i])
        retained = j >= 0 and j in matched_champion and champ_ids[j] == mapping[i]
        nearest = int(np.argmin(dist[i]))
        rows.append(
            {
                "segment_id": ids[i],
                "status": "retained" if retained else "new",
                "label": labels[ids[i]],
                "component": i,
                "champion_component": j if retained else None,
                "distance": float(dist[i, j]) if retained else np.nan,
                "nearest_champion_segment": champ_ids[nearest],
                "nearest_distance": float(dist[i, nearest]),
            }
        )
    retired = [j for j in range(len(champ_ids)) if j not in matched_champion]
    for j in retired:
        rows.append(
            {
                "segment_id": champ_ids[j],
                "status": "retired",
                "label": known[champ_ids[j]],
                "component": None,
                "champion_component": j,
                "distance": np.nan,
                "nearest_champion_segment": None,
                "nearest_distance": np.nan,
            }
        )
    reg = registry.copy()
    tonight = set(ids)
    reg.loc[reg["segment_id"].isin(tonight), "last_seen"] = run_date
    retired_ids = {champ_ids[j] for j in retired}
    reg.loc[reg["segment_id"].isin(retired_ids) & reg["retired_at"].isna(), "retired_at"] = run_date
    new_rows = pd.DataFrame(
        [_reg_row(sid, labels[sid], run_date) for sid in ids if sid not in known],
        columns=REGISTRY_COLUMNS,
    )
    return IdAssignment(
        component_to_segment=ids,
        labels=labels,
        alignment=_alignment_frame(rows),
        registry=_registry_frame(pd.concat([reg, new_rows], ignore_index=True)),
    )


def _reg_row(segment_id: int, label: str, seen: str | None) -> dict:
    return {
        "segment_id": segment_id,
        "label": label,
        "first_seen": seen,
        "last_seen": seen,
        "retired_at": None,
    }


def _alignment_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=ALIGNMENT_COLUMNS)
    for c in ("component", "champion_component", "nearest_champion_segment"):
        df[c] = df[c].astype("Int64")
    for c in ("distance", "nearest_distance"):
        df[c] = df[c].astype("float64")
    df["segment_id"] = df["segment_id"].astype("int64")
    return df.sort_values("segment_id").reset_index(drop=True)


def _registry_frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df[REGISTRY_COLUMNS].copy()
    df["segment_id"] = df["segment_id"].astype("int64")
    df["label"] = df["label"].astype(str)
    for c in REGISTRY_COLUMNS[2:]:
        df[c] = df[c].map(iso_date).astype(object)
    return df.sort_values("segment_id").reset_index(drop=True)
