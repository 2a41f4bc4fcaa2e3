"""Model-based agglomerative hierarchical clustering, mclust's start for EM (Banfield & Raftery
1993; Fraley 1998; mclust's ``hc(modelName = "VVV", use = "SVD")``).

Starting from groups of identical rows, the two groups whose merge loses the least
classification likelihood are merged, until one group is left. For the unconstrained (VVV)
model a group C with n points and scatter W contributes, in mclust's regularised form,

    t(C) = n · log( [n > p] · det(W / n) + β (tr W + α) / n ),   α = tr(W_total) / (n_total p),

(β = 1), and the pair minimising t(C_i ∪ C_j) − t(C_i) − t(C_j) is merged; W of a merge is
W_i + W_j + n_i n_j / (n_i + n_j) (ȳ_i − ȳ_j)(ȳ_i − ȳ_j)ᵀ. ``model="EII"`` uses the sum of
squares instead (Ward's criterion): the merge cost n_i n_j / (n_i + n_j) ‖ȳ_i − ȳ_j‖².

``use`` transforms the data first as mclust does: "VARS" none, "STD" standardised columns,
"SVD" (mclust's default for initialisation) the standardised data rotated onto its singular
vectors and scaled by 1/√(singular value). Time O(m²) merge-cost evaluations and memory O(m²)
for m distinct rows: meant for the few thousand rows of a seeded subsample. The merge loop runs
compiled (``_hierarchical_kernels``); ``reference.merge_sequence`` is its numpy reference.
Exactly tied merge costs (lattice data) go to the lowest group index, which need not be the
pair mclust merges first; without ties the partitions are mclust's.
"""

from collections.abc import Iterable

import numpy as np

from ._fast_kernels import HAVE_NUMBA
from ._hierarchical_kernels import merge_sequence
from ._typing import FloatArray

_MODELS = ("VVV", "EII")
_USES = ("SVD", "VARS", "STD")


def transform_for_hc(X: FloatArray, use: str) -> FloatArray:
    """mclust's ``hc`` data transforms (constant columns dropped once standardised)."""
    if use == "VARS":
        return X
    sd = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    keep = sd > 0
    Z = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    if use == "STD" or Z.shape[1] == 0:
        return Z
    _, s, vt = np.linalg.svd(Z, full_matrices=False)
    good = s > s[0] * 1e-12
    return Z @ vt[good].T / np.sqrt(s[good])


class Agglomeration:
    """The whole merge sequence of one agglomeration: any level is cut from it in O(m log m)."""

    def __init__(self, inverse: np.ndarray, merges: np.ndarray) -> None:
        self.inverse = inverse  # distinct-row index of each row
        self.merges = merges  # (m - 1, 2): at step s, group merges[s, 1] is folded into [s, 0]

    @property
    def n_distinct(self) -> int:
        return len(self.merges) + 1

    def labels(self, k: int) -> np.ndarray:
        """Labels (0..k'−1 in order of first appearance, k' = min(k, distinct rows)) of the
        k-group level: the groups after the first m − k merges."""
        m = self.n_distinct
        owner = np.arange(m)
        done = self.merges[: max(m - k, 0)]
        owner[done[:, 1]] = done[:, 0]
        while True:  # pointer jumping to each group's surviving representative
            nxt = owner[owner]
            if np.array_equal(nxt, owner):
                break
            owner = nxt
        groups = owner[self.inverse]
        _, first = np.unique(groups, return_index=True)
        order = groups[np.sort(first)]
        relabel = np.empty(m, dtype=np.int64)
        relabel[order] = np.arange(len(order))
        return relabel[groups]


def agglomerate(X: FloatArray, *, model: str = "VVV", use: str = "SVD") -> Agglomeration:
    """The agglomeration of ``X`` (n, d) without NaN, down to one group."""
    X = np.asarray(X, dtype=np.float64)
    if model not in _MODELS:
        raise ValueError(f"unknown hierarchical model {model!r}; choose one of {_MODELS}")
    if use not in _USES:
        raise ValueError(f"unknown hierarchical 'use' {use!r}; choose one of {_USES}")
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must not contain NaN or inf (fill or drop incomplete rows first)")
    Z = transform_for_hc(X, use)
    if Z.shape[1] == 0:
        Z = np.zeros((X.shape[0], 1))
    uniq, inverse, counts = np.unique(Z, axis=0, return_inverse=True, return_counts=True)
    alpha = _alpha(uniq, counts)
    if HAVE_NUMBA:
        merges = merge_sequence(uniq, counts.astype(np.int64), alpha, model == "VVV")
    else:  # pragma: no cover
        from . import reference  # the numpy fallback (imports estep, and so models)

        merges = reference.merge_sequence(uniq, counts, model, alpha)
    return Agglomeration(inverse.reshape(-1), merges)


def hierarchical_partitions(
    X: FloatArray, n_clusters: Iterable[int], *, model: str = "VVV", use: str = "SVD"
) -> dict[int, np.ndarray]:
    """Labels (0..k−1, in order of first appearance) of the agglomeration's k-group level for
    each requested k, from one pass over ``X`` (n, d) without NaN."""
    ks = sorted(set(int(k) for k in n_clusters))
    n = np.shape(X)[0] if np.ndim(X) == 2 else 0
    if n and (not ks or ks[0] < 1 or ks[-1] > n):
        raise ValueError(f"every k must be between 1 and the {n} rows, got {ks}")
    tree = agglomerate(X, model=model, use=use)
    return {k: tree.labels(k) for k in ks}


def _alpha(Z: FloatArray, counts: np.ndarray) -> float:
    """α = tr(W_total) / (n_total p), the regularisation of the VVV criterion."""
    total = Z - np.average(Z, axis=0, weights=counts)
    return max(float(np.sum(counts[:, None] * total**2)) / (counts.sum() * Z.shape[1]), 2.2e-16)
