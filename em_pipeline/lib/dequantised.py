"""The sweep's view of tied values: each feature dequantised within its rounding unit.

The mixture is fitted to ``x + unit · (v − ½)`` (:mod:`em_core.dequantize`: a day count, a whole
cart among ratios, a price in cents), then transformed like every other value. ``v`` is a
function of the customer id and the feature (a keyed hash, ``seed`` mixed in), not of the row
order: a customer's jitter is the same every night and in every row order, so an identical re-run
and a shuffled drop see identical data. Only the fit sees it: posteriors, published segments and
scores use the recorded values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from em_core.dequantize import Lattice, dequantize, fit_lattice
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.transforms import FeatureTransform

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def id_uniforms(ids: pd.Series, n_features: int, seed: int) -> np.ndarray:
    """(n, d) U(0, 1) draws, each a fixed function of (id, feature column, seed)."""
    base = pd.util.hash_array(ids.astype(str).to_numpy(dtype=object), categorize=False)
    columns = np.arange(1, n_features + 1, dtype=np.uint64) * _GOLDEN
    with np.errstate(over="ignore"):
        h = base[:, None] ^ (columns[None, :] + np.uint64(seed) * np.uint64(0xBF58476D1CE4E5B9))
        h = _splitmix64(h)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _splitmix64(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit flips about half of the output bits."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def fit_lattices(snapshot: pd.DataFrame, schema: CustomerSchema) -> dict[str, Lattice]:
    """Each feature's resolution and coarser lattices, from tonight's recorded values."""
    return {f: fit_lattice(snapshot[f].to_numpy(dtype=float)) for f in schema.feature_names}


def dequantised_features(
    snapshot: pd.DataFrame,
    schema: CustomerSchema,
    transform: FeatureTransform,
    lattices: dict[str, Lattice],
    seed: int,
) -> np.ndarray:
    """The standardised features of the dequantised values (NaN where missing)."""
    names = schema.feature_names
    u = id_uniforms(snapshot[schema.id_column], len(names), seed)
    jittered = snapshot[[schema.id_column]].copy()
    for j, name in enumerate(names):
        jittered[name] = dequantize(snapshot[name].to_numpy(dtype=float), lattices[name], u[:, j])
    return transform.transform(jittered)
