"""The documented feature transform: a per-feature transform g, then standardise.

``z = (g(x) - center) / scale`` with ``g`` one of em_core's :mod:`~em_core.power` transforms per
feature: the identity, ``log1p``, ``log`` (with an offset for zeros), or a Box-Cox / Yeo-Johnson
power transform whose λ is fitted by maximum likelihood on the observed values (``"auto"``:
Box-Cox when every value is positive), or — ``"mixture"`` — Box-Cox for a feature whose values are
all positive, signed Yeo-Johnson otherwise, with every such feature's λ estimated *within* a
Gaussian mixture (:mod:`em_core.power_within`) on the dequantised values (seed
``MIXTURE_LAMBDA_SEED``), so that the mixture's components, not the whole feature, are Gaussian;
``center`` and ``scale`` are the mean and standard deviation of the *observed* values of ``g(x)``.
NaN stays NaN. The fitted transform (methods, λ, centre, scale) is stored with the model, so
profiles and scores are reported in original units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from em_core import power
from em_pipeline.lib.schema import CustomerSchema

#: Seed of the dequantisation jitter the within-mixture λ step fits (fixed: the transform is
#: fitted once per feature space, before the sweep's own seed is known).
MIXTURE_LAMBDA_SEED = 0


@dataclass(frozen=True)
class FeatureTransform:
    features: tuple[str, ...]
    methods: tuple[str, ...]  # per feature: "none", "log1p", "log", "boxcox", "yeojohnson", ...
    lambdas: tuple[float | None, ...]  # λ of the power transforms, c of log, None for the others
    center: tuple[float, ...]
    scale: tuple[float, ...]
    #: per Box-Cox feature, half its smallest value when fitted: a later value at or below zero
    #: (which Box-Cox cannot take) is raised to it, as "log" floors at −c/2; None elsewhere
    floors: tuple[float | None, ...] | None = None

    @classmethod
    def fit(cls, df: pd.DataFrame, schema: CustomerSchema) -> FeatureTransform:
        names = schema.feature_names
        x = df[names].to_numpy(dtype=float)
        empty = [n for n, e in zip(names, np.isnan(x).all(axis=0), strict=True) if e]
        if empty:
            raise ValueError(f"feature(s) {empty} have no observed value; cannot standardise")
        methods, lambdas = [], []
        for j, feature in enumerate(schema.features):
            try:
                if feature.transform == "mixture":
                    method, lam = _mixture_family(x[:, j]), None
                else:
                    method = power.resolve_method(x[:, j], feature.transform)
                    lam = power.fit_lambda(x[:, j], method)
            except ValueError as e:
                raise ValueError(f"feature {feature.name!r}: {e}") from e
            methods.append(method)
            lambdas.append(lam)
        free = [
            f.transform == "mixture" and m != "none"
            for f, m in zip(schema.features, methods, strict=True)
        ]
        if any(free):
            lambdas = _within_mixture_lambdas(df, schema, methods, lambdas, free)
        floors = tuple(
            0.5 * float(np.nanmin(x[:, j])) if m == "boxcox" else None
            for j, m in enumerate(methods)
        )
        g = _forward(x, methods, lambdas, names)
        with np.errstate(over="ignore", invalid="ignore"):
            center = np.nanmean(g, axis=0)
            scale = np.nanstd(g, axis=0)
        broken = [n for n, c, v in zip(names, center, scale, strict=True) if not np.isfinite(c * v)]
        if broken:
            raise ValueError(
                f"feature(s) {broken}: mean or standard deviation is not finite (values too "
                "large?); lower the schema's max_value so that ingest quarantines them"
            )
        scale = np.where(scale > 0, scale, 1.0)
        return cls(
            tuple(names), tuple(methods), tuple(lambdas), tuple(map(float, center)),
            tuple(map(float, scale)), floors if any(f is not None for f in floors) else None,
        )  # fmt: skip

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(n, d) float array of standardised features; NaN where the input is missing."""
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise ValueError(f"input lacks feature column(s) {missing}")
        x = df[list(self.features)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        x = np.array(x, copy=True)  # a view of the frame can be read-only
        for j, floor in enumerate(self.floors or ()):
            if floor is not None:
                x[:, j] = np.maximum(x[:, j], floor)  # NaN stays NaN
        g = _forward(x, self.methods, self.lambdas, self.features)
        return (g - np.asarray(self.center)) / np.asarray(self.scale)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to original units (works on (..., d) arrays, e.g. multiple imputations)."""
        g = np.asarray(z, dtype=float) * np.asarray(self.scale) + np.asarray(self.center)
        out = g.copy()
        for j, (method, lam) in enumerate(zip(self.methods, self.lambdas, strict=True)):
            out[..., j] = power.inverse(g[..., j], method, lam)
        return out

    def describe(self) -> list[str]:
        """One phrase per feature, e.g. "boxcox(λ=0.12)" or "log(x+0.021)"."""
        return [
            m if lam is None else f"log(x+{lam:.4g})" if m == "log" else f"{m}(λ={lam:.4g})"
            for m, lam in zip(self.methods, self.lambdas, strict=True)
        ]

    def to_dict(self) -> dict:
        out = {
            "features": list(self.features),
            "methods": list(self.methods),
            "lambdas": list(self.lambdas),
            "center": list(self.center),
            "scale": list(self.scale),
        }
        if self.floors is not None:
            out["floors"] = list(self.floors)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> FeatureTransform:
        if "methods" in d:
            methods = tuple(str(m) for m in d["methods"])
            lambdas = tuple(None if v is None else float(v) for v in d["lambdas"])
        else:  # written before power transforms: a log1p flag per feature
            methods = tuple("log1p" if v else "none" for v in d["log1p"])
            lambdas = (None,) * len(methods)
        floors = d.get("floors")
        return cls(
            tuple(d["features"]), methods, lambdas,
            tuple(float(v) for v in d["center"]), tuple(float(v) for v in d["scale"]),
            None if floors is None else tuple(None if v is None else float(v) for v in floors),
        )  # fmt: skip


def _mixture_family(x: np.ndarray) -> str:
    """Box-Cox when every observed value is positive, signed Yeo-Johnson otherwise; the identity
    for a feature with fewer than 3 distinct values (no λ to estimate: constant tonight, or a
    flag), which standardising then centres."""
    observed = x[~np.isnan(x)]
    if np.unique(observed).size < 3:
        return "none"
    return "boxcox" if np.all(observed > 0) else "signed_yeojohnson"


def _within_mixture_lambdas(
    df: pd.DataFrame, schema: CustomerSchema, methods: list[str], lambdas: list, free: list[bool]
) -> list[float | None]:
    """λ of the "mixture" features, estimated within a mixture on the dequantised values (a
    Box-Cox feature whose jitter would reach zero is fitted on its recorded values)."""
    from em_core.dequantize import dequantize
    from em_core.power_within import fit_lambdas_within_mixture
    from em_pipeline.lib.dequantised import fit_lattices, id_uniforms

    names = schema.feature_names
    lattices = fit_lattices(df, schema)
    u = id_uniforms(df[schema.id_column], len(names), MIXTURE_LAMBDA_SEED)
    columns = []
    for j, name in enumerate(names):
        x = df[name].to_numpy(dtype=float)
        jittered = dequantize(x, lattices[name], u[:, j])
        keep_recorded = methods[j] == "boxcox" and np.nanmin(jittered) <= 0
        columns.append(x if keep_recorded else jittered)
    try:
        result = fit_lambdas_within_mixture(np.column_stack(columns), methods, lambdas, free)
    except ValueError as e:
        raise ValueError(f"power transforms within a mixture: {e}") from e
    return result.lambdas


def _forward(x: np.ndarray, methods, lambdas, names) -> np.ndarray:
    g = np.empty_like(x, dtype=float)
    for j, (method, lam) in enumerate(zip(methods, lambdas, strict=True)):
        try:
            g[:, j] = power.forward(x[:, j], method, lam)
        except ValueError as e:
            raise ValueError(f"feature {names[j]!r}: {e}") from e
    return g
