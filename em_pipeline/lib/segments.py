"""Bookkeeping around a fitted em_core model: readable segment ids, scoring tables and profiles.

On the first night, segment ids are the model's components re-numbered by the mean of
``schema.label_feature`` (segment 0 has the lowest spend); afterwards they are the stable ids
assigned by :mod:`em_pipeline.lib.stable_ids` (aligned to the champion model), so the ids of a
model are any distinct non-negative integers, not necessarily 0..K-1. :class:`SegmentBundle` is
what is stored as ``segment_model.json`` and shipped inside the MLflow pyfunc model: the em_core
parameters, the customer schema, the feature transform, the component → segment id map and the
label of each id. No numerical code: every probability comes from em_core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from em_core.merging import segment_posteriors
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.transforms import FeatureTransform

_TIERS = {
    1: ["all customers"],
    2: ["lower spend", "higher spend"],
    3: ["low spend", "mid spend", "high spend"],
    4: ["low spend", "lower-mid spend", "upper-mid spend", "high spend"],
    5: ["very low spend", "low spend", "mid spend", "high spend", "very high spend"],
}


def segment_order(means: np.ndarray, schema: CustomerSchema) -> list[int]:
    """component_to_segment map: components ranked by their mean of the label feature."""
    j = schema.feature_names.index(schema.label_feature)
    ranked = np.argsort(np.asarray(means)[:, j], kind="stable")
    mapping = [0] * len(ranked)
    for seg, comp in enumerate(ranked):
        mapping[int(comp)] = seg
    return mapping


def segment_labels(means: np.ndarray, mapping: list[int], schema: CustomerSchema) -> list[str]:
    """Readable label per segment: spend tier plus the most distinctive other feature."""
    k = len(mapping)
    label_word = schema.label_feature.replace("_", " ")
    tiers = _TIERS.get(k) or [f"{label_word} tier {i + 1} of {k}" for i in range(k)]
    if k <= 5 and schema.label_feature != "total_spend":
        tiers = [t.replace("spend", label_word) for t in tiers]
    labels = [""] * k
    names = schema.feature_names
    others = [i for i, n in enumerate(names) if n != schema.label_feature]
    for comp, seg in enumerate(mapping):
        label = tiers[seg]
        if k > 1 and others:
            z = np.asarray(means)[comp]
            j = max(others, key=lambda i: abs(z[i]))
            if abs(z[j]) >= 0.5:
                word = "high" if z[j] > 0 else "low"
                label += f", {word} {names[j].replace('_', ' ')}"
        labels[seg] = label
    return labels


@dataclass
class SegmentBundle:
    """Everything needed to score customers given in original units.

    ``component_to_segment[i]`` is the segment id of the model's component i (several
    components may form one segment); ``labels`` maps a segment id to its label. Probability
    columns are ordered by ascending segment id.
    """

    model: Any  # em_core.GaussianMixture
    schema: CustomerSchema
    transform: FeatureTransform
    component_to_segment: list[int]
    labels: dict[int, str]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = [int(v) for v in self.component_to_segment]
        if min(ids, default=0) < 0:
            raise ValueError(f"segment ids must be non-negative: {ids}")
        if len(ids) != self.model.n_components:
            raise ValueError("component_to_segment needs one id per model component")
        if isinstance(self.labels, list | tuple):  # labels by rank (first-night numbering)
            self.labels = dict(enumerate(self.labels))
        self.labels = {int(k): str(v) for k, v in self.labels.items()}
        if set(self.labels) != set(ids):
            raise ValueError(f"labels {sorted(self.labels)} do not match the segment ids {ids}")
        self.component_to_segment = ids

    @classmethod
    def build(
        cls,
        model: Any,
        schema: CustomerSchema,
        transform: FeatureTransform,
        info: dict,
        component_to_segment: list[int] | None = None,
        labels: dict[int, str] | None = None,
    ) -> SegmentBundle:
        """Bundle a fitted model; without ids, segments are numbered by the label feature."""
        if component_to_segment is None:
            component_to_segment = segment_order(model.means_, schema)
            labels = dict(enumerate(segment_labels(model.means_, component_to_segment, schema)))
        if labels is None:
            raise ValueError("labels are required with explicit segment ids")
        return cls(model, schema, transform, list(component_to_segment), labels, info)

    @property
    def n_segments(self) -> int:
        return len(set(self.component_to_segment))

    @property
    def segment_ids(self) -> list[int]:
        """Segment ids in ascending order (the order of the probability columns)."""
        return sorted(set(self.component_to_segment))

    def _columns(self) -> np.ndarray:
        """Probability column of each component (components of one segment share one)."""
        ids = self.segment_ids
        return np.array([ids.index(s) for s in self.component_to_segment], dtype=np.int64)

    def probabilities(self, df: pd.DataFrame) -> np.ndarray:
        """(n, S) segment posteriors, columns in ascending segment id order: a segment's
        probability is the sum of its components' (one component per segment unless merged)."""
        return self._segment_posteriors(self.model.predict_proba(self.transform.transform(df)))

    def _segment_posteriors(self, component_proba: np.ndarray) -> np.ndarray:
        return segment_posteriors(component_proba, self._columns().tolist(), self.n_segments)

    def score(self, df: pd.DataFrame) -> pd.DataFrame:
        """segment, segment_label, confidence, component (the most probable mixture component,
        for analysts) and prob_segment_<id> for each input row."""
        component_proba = self.model.predict_proba(self.transform.transform(df))
        proba = self._segment_posteriors(component_proba)
        ids = np.asarray(self.segment_ids, dtype=np.int64)
        seg = ids[proba.argmax(axis=1)]
        out = pd.DataFrame(
            {
                "segment": seg.astype("int64"),
                "segment_label": [self.labels[int(s)] for s in seg],
                "confidence": proba.max(axis=1),
                "component": component_proba.argmax(axis=1).astype("int64"),
            },
            index=df.index,
        )
        for j, sid in enumerate(ids):
            out[f"prob_segment_{sid}"] = proba[:, j]
        return out

    def to_dict(self) -> dict:
        return {
            "format": "em-segments/segment-bundle/2",
            "model": self.model.to_dict(),
            "schema": self.schema.to_dict(),
            "transform": self.transform.to_dict(),
            "component_to_segment": list(self.component_to_segment),
            "labels": {str(k): v for k, v in sorted(self.labels.items())},
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SegmentBundle:
        from em_core import GaussianMixture

        labels = d["labels"]
        if isinstance(labels, dict):
            labels = {int(k): v for k, v in labels.items()}
        return cls(
            model=GaussianMixture.from_dict(d["model"]),
            schema=CustomerSchema.from_dict(d["schema"]),
            transform=FeatureTransform.from_dict(d["transform"]),
            component_to_segment=[int(v) for v in d["component_to_segment"]],
            labels=labels,
            info=dict(d.get("info", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> SegmentBundle:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SegmentBundle:
        return cls.from_json(Path(path).read_text())


def customer_segments_table(
    bundle: SegmentBundle, features: pd.DataFrame, run_date: str
) -> pd.DataFrame:
    """customer_id, segment, segment_label, confidence, prob_segment_*, run_date."""
    idc = bundle.schema.id_column
    scored = bundle.score(features)
    out = pd.concat([features[[idc]].reset_index(drop=True), scored.reset_index(drop=True)], axis=1)
    out["run_date"] = run_date
    return out


def segment_profiles_table(
    bundle: SegmentBundle, snapshot: pd.DataFrame, segments: pd.DataFrame, run_date: str
) -> pd.DataFrame:
    """Per segment: size, share, mean and median of each feature over observed original values."""
    idc = bundle.schema.id_column
    merged = snapshot.merge(segments[[idc, "segment", "confidence"]], on=idc, how="inner")
    if len(merged) != len(segments):
        raise ValueError("customer_segments and the snapshot do not hold the same customers")
    n = len(merged)
    rows = []
    for seg in bundle.segment_ids:
        part = merged[merged["segment"] == seg]
        row: dict[str, Any] = {
            "segment": seg,
            "segment_label": bundle.labels[seg],
            "size": len(part),
            "share": len(part) / n if n else 0.0,
            "mean_confidence": float(part["confidence"].mean()) if len(part) else None,
        }
        for f in bundle.schema.feature_names:
            col = part[f]
            row[f"mean_{f}"] = float(col.mean()) if col.notna().any() else None
            row[f"median_{f}"] = float(col.median()) if col.notna().any() else None
            row[f"missing_share_{f}"] = float(col.isna().mean()) if len(part) else None
        row["run_date"] = run_date
        rows.append(row)
    return pd.DataFrame(rows)


def component_profiles_table(
    bundle: SegmentBundle, segments: pd.DataFrame, run_date: str
) -> pd.DataFrame:
    """Per mixture component (for analysts): its segment, weight, the customers whose most
    probable component it is, and its centre in original units (the transform's inverse of
    the component mean)."""
    model = bundle.model
    sizes = segments["component"].value_counts().reindex(range(model.n_components), fill_value=0)
    centres = bundle.transform.inverse(model.means_)
    rows = []
    for k in range(model.n_components):
        row: dict[str, Any] = {
            "component": k,
            "segment": bundle.component_to_segment[k],
            "weight": float(model.weights_[k]),
            "size": int(sizes[k]),
        }
        for j, f in enumerate(bundle.schema.feature_names):
            row[f"centre_{f}"] = float(centres[k, j])
        row["run_date"] = run_date
        rows.append(row)
    return pd.DataFrame(rows)
