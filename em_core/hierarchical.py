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
compiled (``_hierarchical_kernels``); ``merge_sequence_reference`` is its numpy reference.
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


class _Groups:
    """Sizes, means and scatters of the current groups, and their VVV / EII terms."""

    def __init__(self, Z: FloatArray, counts: FloatArray, model: str, alpha: float) -> None:
        m, p = Z.shape
        self.p, self.model, self.alpha = p, model, alpha
        self.n = counts.astype(float)
        self.mean = Z.copy()
        self.W = np.zeros((m, p, p)) if model == "VVV" else None
        self.trace = np.zeros(m)
        self.term = self._term(self.n, self.W, self.trace)

    def _term(self, n: FloatArray, W: FloatArray | None, trace: FloatArray) -> FloatArray:
        if self.model == "EII":
            return trace
        inner = (trace + self.alpha) / n
        big = n > self.p
        if np.any(big):
            sign, logdet = np.linalg.slogdet(W[big] / n[big, None, None])
            inner[big] += np.where(sign > 0, np.exp(logdet), 0.0)
        return n * np.log(inner)

    def merge_costs(self, a: int, others: np.ndarray) -> FloatArray:
        """t(C_a ∪ C_b) − t(C_a) − t(C_b) for every b in ``others``."""
        na, nb = self.n[a], self.n[others]
        n = na + nb
        diff = self.mean[others] - self.mean[a]
        f = na * nb / n
        trace = self.trace[a] + self.trace[others] + f * np.einsum("ij,ij->i", diff, diff)
        W = None
        if self.model == "VVV":
            W = self.W[a] + self.W[others] + f[:, None, None] * diff[:, :, None] * diff[:, None, :]
        return self._term(n, W, trace) - self.term[a] - self.term[others]

    def merge(self, a: int, b: int) -> None:
        """Fold group b into group a."""
        na, nb = self.n[a], self.n[b]
        n = na + nb
        diff = self.mean[b] - self.mean[a]
        f = na * nb / n
        if self.W is not None:
            self.W[a] = self.W[a] + self.W[b] + f * np.outer(diff, diff)
        self.trace[a] += self.trace[b] + f * float(diff @ diff)
        self.mean[a] = (na * self.mean[a] + nb * self.mean[b]) / n
        self.n[a] = n
        W = None if self.W is None else self.W[a : a + 1]
        self.term[a] = self._term(self.n[a : a + 1], W, self.trace[a : a + 1])[0]


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
        merges = merge_sequence_reference(uniq, counts, model, alpha)
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


def merge_sequence_reference(
    Z: FloatArray, counts: np.ndarray, model: str, alpha: float
) -> np.ndarray:
    """(a, b) of each merge in order, b folded into a, over the m distinct rows ``Z`` (numpy;
    the compiled ``_hierarchical_kernels.merge_sequence`` makes the same merges)."""
    m = Z.shape[0]
    groups = _Groups(Z, counts, model, alpha)
    merges = np.empty((max(m - 1, 0), 2), dtype=np.int64)
    alive = np.ones(m, dtype=bool)
    cost = np.full((m, m), np.inf)
    for a in range(m - 1):
        cost[a, a + 1 :] = groups.merge_costs(a, np.arange(a + 1, m))
        cost[a + 1 :, a] = cost[a, a + 1 :]
    best = np.argmin(cost, axis=1) if m > 1 else np.zeros(1, dtype=int)
    for step in range(m - 1):
        rows = np.flatnonzero(alive)
        i = rows[np.argmin(cost[rows, best[rows]])]
        a, b = min(i, best[i]), max(i, best[i])
        groups.merge(a, b)
        merges[step] = a, b
        alive[b] = False
        cost[b, :] = cost[:, b] = np.inf
        others = np.flatnonzero(alive)
        others = others[others != a]
        if others.size:
            cost[a, others] = cost[others, a] = groups.merge_costs(a, others)
        stale = (best[others] == a) | (best[others] == b)
        if stale.any():
            best[others[stale]] = np.argmin(cost[others[stale]], axis=1)
        rest = others[~stale]
        now = cost[rest, best[rest]]
        closer = (cost[rest, a] < now) | ((cost[rest, a] == now) & (a < best[rest]))
        best[rest[closer]] = a
        best[a] = np.argmin(cost[a]) if others.size else a
    return merges
