"""The documented feature transform: ``log1p`` for skewed money/count features, then standardise.

``z = (g(x) - center) / scale`` with ``g = log1p`` or the identity per feature; ``center`` and
``scale`` are the mean and standard deviation of the *observed* values of ``g(x)``. NaN stays NaN.
The fitted transform is stored with the model, so profiles and scores are reported in original
units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from em_pipeline.lib.schema import CustomerSchema


@dataclass(frozen=True)
class FeatureTransform:
    features: tuple[str, ...]
    log1p: tuple[bool, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, df: pd.DataFrame, schema: CustomerSchema) -> FeatureTransform:
        names = schema.feature_names
        logs = tuple(f.transform == "log1p" for f in schema.features)
        g = _forward(df[names].to_numpy(dtype=float), logs)
        if np.isnan(g).all(axis=0).any():
            empty = [n for n, e in zip(names, np.isnan(g).all(axis=0), strict=True) if e]
            raise ValueError(f"feature(s) {empty} have no observed value; cannot standardise")
        center = np.nanmean(g, axis=0)
        scale = np.nanstd(g, axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        return cls(tuple(names), logs, tuple(map(float, center)), tuple(map(float, scale)))

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(n, d) float array of standardised features; NaN where the input is missing."""
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise ValueError(f"input lacks feature column(s) {missing}")
        x = df[list(self.features)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        return (_forward(x, self.log1p) - np.asarray(self.center)) / np.asarray(self.scale)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to original units (works on (..., d) arrays, e.g. multiple imputations)."""
        g = np.asarray(z, dtype=float) * np.asarray(self.scale) + np.asarray(self.center)
        out = g.copy()
        for j, is_log in enumerate(self.log1p):
            if is_log:
                out[..., j] = np.expm1(g[..., j])
        return out

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "log1p": list(self.log1p),
            "center": list(self.center),
            "scale": list(self.scale),
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureTransform:
        return cls(
            tuple(d["features"]),
            tuple(bool(v) for v in d["log1p"]),
            tuple(float(v) for v in d["center"]),
            tuple(float(v) for v in d["scale"]),
        )


def _forward(x: np.ndarray, logs: tuple[bool, ...]) -> np.ndarray:
    g = np.array(x, dtype=float, copy=True)
    for j, is_log in enumerate(logs):
        if is_log:
            col = g[:, j]
            if np.nanmin(col, initial=0.0) <= -1.0:
                raise ValueError("log1p feature has values <= -1")
            g[:, j] = np.log1p(col)
    return g
