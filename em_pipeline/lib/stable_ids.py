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
    perm = np.asarray(align_labels(model, champion.model), dtype=np.int64)
    dist = np.asarray(component_distances(model, champion.model), dtype=float)
    matches: list[int | None] = []
    for i, j in enumerate(perm):
        ok = j >= 0 and (max_match_distance is None or dist[i, j] <= max_match_distance)
        matches.append(int(j) if ok else None)
    units = _Units(model.means_, list(range(model.n_components)), list(range(model.n_components)))
    return _assign(units, matches, dist, champion, champion.component_to_segment, schema,
                   run_date, registry)  # fmt: skip


def assign_merged_segment_ids(
    model: Any,
    component_segment: list[int],
    posteriors: np.ndarray,
    champion: SegmentBundle | None,
    champion_posteriors: np.ndarray | None,
    schema: CustomerSchema,
    run_date: str,
    *,
    registry: pd.DataFrame | None = None,
) -> IdAssignment:
    """Segment ids when components are merged into segments (``component_segment[k]`` = 0..S−1).

    A segment is a mixture, so it is matched to the champion's segments by where its customers
    come from (:func:`em_core.match_segments` on ``posteriors`` (n, S) and the champion's
    ``champion_posteriors`` of the same customers, columns in the champion's ascending id order);
    the alignment's distance is the Bhattacharyya distance between the segments' moment-matched
    Gaussians (:func:`em_core.alignment.segment_distances`), and ``component`` names the
    segment's heaviest component.
    """
    from em_core import match_segments
    from em_core.alignment import segment_distances

    n_segments = max(component_segment) + 1
    by_weight = np.argsort(-np.asarray(model.weights_), kind="stable")
    heaviest = [
        next(int(k) for k in by_weight if component_segment[k] == s) for s in range(n_segments)
    ]
    if champion is None:
        means = segment_distances(model, component_segment)[1]
        units = _Units(means, list(component_segment), heaviest)
        return _assign(units, [None] * n_segments, None, None, [], schema, run_date, registry)
    champ_ids = champion.segment_ids
    champ_seg = [champ_ids.index(sid) for sid in champion.component_to_segment]
    dist, means = segment_distances(model, component_segment, champion.model, champ_seg)
    units = _Units(means, list(component_segment), heaviest)
    match, _ = match_segments(posteriors, champion_posteriors)
    matches = [int(j) if j >= 0 else None for j in match]
    return _assign(units, matches, dist, champion, champ_ids, schema, run_date, registry)


@dataclass(frozen=True)
class _Units:
    """What gets an id: per unit (a component, or a merged segment) its mean in model space,
    the unit of each component, and the component the alignment table names."""

    means: np.ndarray
    unit_of_component: list[int]
    component: list[int]


def _assign(
    units: _Units,
    matches: list[int | None],
    dist: np.ndarray | None,
    champion: SegmentBundle | None,
    champ_ids: list[int],
    schema: CustomerSchema,
    run_date: str,
    registry: pd.DataFrame | None,
) -> IdAssignment:
    """Ids, labels, alignment rows and the registry from the units' matches to ``champ_ids``."""
    registry = normalise_registry(registry)
    known = {int(s): lab for s, lab in zip(registry["segment_id"], registry["label"], strict=True)}
    for sid in champ_ids:  # a champion from before the registry existed
        if sid not in known:
            known[sid] = champion.labels[sid]
            row = _reg_row(sid, champion.labels[sid], champion.info.get("run_date"))
            registry = pd.concat([registry, pd.DataFrame([row], columns=REGISTRY_COLUMNS)],
                                 ignore_index=True)  # fmt: skip
    n_units = len(matches)
    unit_ids: list[int | None] = [None if j is None else champ_ids[j] for j in matches]
    next_id = max([*known, *champ_ids, -1]) + 1
    # new units get fresh ids in order of the label feature (spend)
    rank = segment_order(units.means, schema)
    fresh_labels = segment_labels(units.means, rank, schema)
    labels = {sid: known[sid] for sid in unit_ids if sid is not None}
    used = set(labels.values())
    for i in sorted((i for i in range(n_units) if unit_ids[i] is None), key=lambda i: rank[i]):
        unit_ids[i] = next_id
        label = fresh_labels[rank[i]]
        if label in used:
            label = f"{label} (segment {next_id})"
        labels[next_id] = label
        used.add(label)
        next_id += 1
    ids = [int(u) for u in unit_ids]
    rows = []
    for i in range(n_units):
        j = matches[i]
        nearest = None if dist is None or not champ_ids else int(np.argmin(dist[i]))
        rows.append({
            "segment_id": ids[i], "status": "new" if j is None else "retained",
            "label": labels[ids[i]], "component": units.component[i],
            "champion_component": j, "distance": np.nan if j is None else float(dist[i, j]),
            "nearest_champion_segment": None if nearest is None else champ_ids[nearest],
            "nearest_distance": np.nan if nearest is None else float(dist[i, nearest]),
        })  # fmt: skip
    retired = [j for j in range(len(champ_ids)) if j not in set(matches)]
    rows += [
        {"segment_id": champ_ids[j], "status": "retired", "label": known[champ_ids[j]],
         "component": None, "champion_component": j, "distance": np.nan,
         "nearest_champion_segment": None, "nearest_distance": np.nan}
        for j in retired
    ]  # fmt: skip
    reg = registry.copy()
    if champion is None:  # registered ids that are not tonight's are retired
        reg.loc[reg["retired_at"].isna(), "retired_at"] = run_date
    reg.loc[reg["segment_id"].isin(set(ids)), "last_seen"] = run_date
    retired_ids = {champ_ids[j] for j in retired}
    reg.loc[reg["segment_id"].isin(retired_ids) & reg["retired_at"].isna(), "retired_at"] = run_date
    new_rows = pd.DataFrame(
        [_reg_row(sid, labels[sid], run_date) for sid in sorted(set(ids)) if sid not in known],
        columns=REGISTRY_COLUMNS,
    )
    return IdAssignment(
        component_to_segment=[ids[u] for u in units.unit_of_component],
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
