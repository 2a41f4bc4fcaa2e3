"""Segments from components: greedy merging of a fitted mixture's components.

A mixture chosen by BIC fits the *density*; a group of customers whose shape is not Gaussian is
then fitted by several components. Merging groups the components into segments without changing
the mixture: a segment's posterior is the sum of its components', τ_is = Σ_{k∈s} τ_ik, and a
customer's segment is argmax_s τ_is. Both criteria merge one pair of groups at a time:

``"demp"`` — Hennig (2010), fpc's ``mergenormals(method="demp")``: the directly estimated
    misclassification probability of group j into group i under the two-group Bayes rule,

        p̂(j→i) = Σ_x τ_xj 1[τ_xi > τ_xj] / Σ_x τ_xj,

    is the share of j's expected members that the data put closer to i. The pair with the largest
    max(p̂(i→j), p̂(j→i)) is merged, while that value is at least ``cutoff`` (the default
    ``stop="cutoff"``). Hennig's default, 0.025, keeps apart clusters that exchange more than
    2.5 % of their members; customer segments overlap more than that, so the default here is
    ``DEMP_CUTOFF`` = 0.05: two groups are one segment when more than 5 % of one's expected
    members are closer to the other. Measured on three generators (``bench/segments.py``, bench
    README), merges of true segments had p̂ ≤ 0.04 and merges inside a segment p̂ ≥ 0.06.
    ``stop="gap"`` instead chooses, among the levels the cutoff allows, the one at the largest
    drop of log p̂ along the path 0.5, p̂_1, p̂_2, …, p̂_m, p̂_{m+1} (0.5 stands before the first
    merge so that "no merge" competes too; p̂_{m+1} is the first value below the cutoff, or the
    cutoff itself when every merge is allowed).

``"entropy"`` — Baudry, Raftery, Celeux, Lo & Gottardo (2010), mclust's ``clustCombi``: the pair
    whose union lowers the posterior entropy EN = −Σ_x Σ_s τ_xs log τ_xs the most is merged, down to
    one segment; the number of segments is the change point of a two-piece linear fit of EN
    against the number of segments (``clustCombiOptim(reg = 2)``).

Both work on the posterior matrix alone (n × K), so they apply to any covariance model and to
rows with missing cells (τ is then the posterior given the observed cells).
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._typing import ArrayLike, FloatArray

MergeMethod = Literal["demp", "entropy"]
MERGE_METHODS: tuple[MergeMethod, ...] = ("demp", "entropy")
#: Smallest DEMP at which two groups are merged (Hennig (2010)'s default is 0.025).
DEMP_CUTOFF = 0.05
#: DEMP of two indistinguishable groups: the pairwise Bayes rule is a coin flip.
INDISTINGUISHABLE = 0.5
DempStop = Literal["gap", "cutoff"]
DEMP_STOPS: tuple[DempStop, ...] = ("gap", "cutoff")


@dataclass(frozen=True)
class MergeStep:
    """One merge: groups ``kept`` and ``absorbed`` (indices into the components' groups, named by
    their smallest component) became one, leaving ``n_segments``; ``value`` is the criterion of
    the pair (DEMP: the misclassification probability; entropy: the entropy decrease),
    ``entropy`` the posterior entropy EN after the merge and ``forced`` whether the merge was
    made because a group was below ``min_share`` rather than for its value."""

    n_segments: int
    kept: int
    absorbed: int
    value: float
    entropy: float
    forced: bool = False


@dataclass(frozen=True)
class MergeResult:
    """The merge path and the chosen grouping.

    ``component_segment[k]`` is the segment (0 … n_segments−1, ordered by their smallest
    component) of component k; ``path`` lists every merge down to ``n_segments`` (DEMP) or to one
    segment (entropy); ``entropies[s − 1]`` is EN with s segments along the path.
    """

    method: MergeMethod
    component_segment: list[int]
    n_segments: int
    path: list[MergeStep] = field(repr=False)
    entropies: list[float] = field(repr=False)

    def posteriors(self, resp: ArrayLike) -> FloatArray:
        """Segment posteriors τ_is = Σ_{k∈s} τ_ik, shape (n, n_segments)."""
        return segment_posteriors(resp, self.component_segment, self.n_segments)


def segment_posteriors(
    resp: ArrayLike, component_segment: list[int], n_segments: int
) -> FloatArray:
    """Sum the columns of ``resp`` (n, K) into segments: out[:, s] = Σ_{k ∈ s} resp[:, k]."""
    resp = np.asarray(resp, dtype=float)
    out = np.zeros((resp.shape[0], n_segments))
    for k, s in enumerate(component_segment):
        out[:, s] += resp[:, k]
    return out


def posterior_entropy(resp: FloatArray) -> float:
    """EN = −Σ_i Σ_k τ_ik log τ_ik (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(resp > 0, resp * np.log(resp), 0.0)
    return -float(terms.sum())


def demp(resp: FloatArray, i: int, j: int) -> float:
    """max(p̂(i→j), p̂(j→i)), Hennig's symmetric DEMP of columns i and j of ``resp``."""
    a, b = resp[:, i], resp[:, j]
    to_i = a > b
    j_to_i = b[to_i].sum() / max(b.sum(), np.finfo(float).tiny)
    i_to_j = a[~to_i].sum() / max(a.sum(), np.finfo(float).tiny)
    return float(max(j_to_i, i_to_j))


def entropy_decrease(resp: FloatArray, i: int, j: int) -> float:
    """EN(before) − EN(after merging columns i and j) ≥ 0."""
    a, b = resp[:, i], resp[:, j]
    return posterior_entropy(np.column_stack([a, b])) - posterior_entropy((a + b)[:, None])


def merge_components(
    resp: ArrayLike,
    method: MergeMethod = "demp",
    *,
    cutoff: float | None = None,
    n_segments: int | None = None,
    stop: DempStop = "cutoff",
    min_share: float = 0.0,
) -> MergeResult:
    """Merge the components whose posteriors are ``resp`` (n, K) into segments.

    The greedy path always runs down to one segment (it is the merge path a plot shows); the
    chosen level is ``n_segments`` if given, else for "demp" the level ``stop`` picks among those
    whose merges all had DEMP ≥ ``cutoff`` (default ``DEMP_CUTOFF``; "cutoff": the last of them,
    "gap": the one after the largest relative drop) and for "entropy" the elbow of EN.

    ``min_share``: a group whose expected share of the rows, Σ_i τ_is / n, is below it cannot
    be a segment. While one exists, the next merge is forced: the smallest such group joins the
    group it scores best with (its nearest by the criterion). Forced merges come first on the path
    and are always taken, whatever ``cutoff`` or the elbow say.
    """
    resp = _check_resp(resp)
    if method not in MERGE_METHODS:
        raise ValueError(f"method must be one of {MERGE_METHODS}, got {method!r}")
    k = resp.shape[1]
    if n_segments is not None and not 1 <= n_segments <= k:
        raise ValueError(f"n_segments must be in 1..{k}, got {n_segments}")
    cutoff = DEMP_CUTOFF if cutoff is None else float(cutoff)
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must be in [0, 1], got {cutoff}")
    if stop not in DEMP_STOPS:
        raise ValueError(f"stop must be one of {DEMP_STOPS}, got {stop!r}")
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"min_share must be in [0, 1), got {min_share}")
    score = demp if method == "demp" else entropy_decrease
    path, entropies = _greedy_path(resp, score, min_share)
    n_forced = sum(step.forced for step in path)
    if n_segments is not None:
        chosen = n_segments
    elif method == "demp":
        chosen = _demp_level(path[n_forced:], k - n_forced, cutoff, stop)
    else:
        chosen = min(elbow(entropies), k - n_forced)
    groups = _groups_at(k, path, chosen)
    mapping = [0] * k
    for s, members in enumerate(groups):
        for c in members:
            mapping[c] = s
    return MergeResult(method, mapping, len(groups), path, entropies)


def _greedy_path(
    resp: FloatArray, score, min_share: float = 0.0
) -> tuple[list[MergeStep], list[float]]:
    """Merge the best-scoring pair of groups until one is left; while a group's share is below
    ``min_share``, only pairs with the smallest such group compete. Groups are named by their
    smallest component; a merge only rescores the pairs of the merged group. Returns the steps
    and EN at 1..K segments."""
    columns = resp.copy()
    alive = list(range(resp.shape[1]))
    values = {(a, b): score(columns, a, b) for a in alive for b in alive if a < b}
    en = posterior_entropy(columns)
    entropies = [en]
    path: list[MergeStep] = []
    while len(alive) > 1:
        small = _smallest_below(columns, alive, min_share)
        pool = values if small is None else {p: v for p, v in values.items() if small in p}
        (a, b), value = max(pool.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))
        before = posterior_entropy(columns[:, [a, b]])
        columns[:, a] += columns[:, b]
        en += posterior_entropy(columns[:, [a]]) - before
        alive.remove(b)
        values = {pair: v for pair, v in values.items() if a not in pair and b not in pair}
        values.update(
            {(min(a, c), max(a, c)): score(columns, min(a, c), max(a, c)) for c in alive if c != a}
        )
        path.append(MergeStep(len(alive), a, b, float(value), en, small is not None))
        entropies.append(en)
    return path, entropies[::-1]


def _smallest_below(columns: FloatArray, alive: list[int], min_share: float) -> int | None:
    """The alive group with the smallest expected share if that share is below ``min_share``."""
    shares = columns[:, alive].sum(axis=0) / columns.shape[0]
    smallest = int(np.argmin(shares))
    return alive[smallest] if shares[smallest] < min_share else None


def _demp_level(path: list[MergeStep], k: int, cutoff: float, stop: str) -> int:
    """Number of segments DEMP keeps: see the module docstring."""
    allowed = 0
    while allowed < len(path) and path[allowed].value >= cutoff:
        allowed += 1
    if allowed == 0 or stop == "cutoff":
        return k - allowed
    values = [INDISTINGUISHABLE, *(step.value for step in path[:allowed])]
    values.append(path[allowed].value if allowed < len(path) else cutoff)
    tiny = np.finfo(float).tiny
    drops = [np.log(values[j]) - np.log(max(values[j + 1], tiny)) for j in range(allowed + 1)]
    return k - int(np.argmax(drops))


def elbow(entropies: list[float]) -> int:
    """Number of segments at the change point of a two-piece linear fit of EN(s), s = 1..K
    (least squares, both pieces fitted separately, the change point shared; s = K when K ≤ 2)."""
    y = np.asarray(entropies, dtype=float)
    k = y.size
    if k <= 2:
        return k
    x = np.arange(1, k + 1, dtype=float)
    best, best_sse = k, np.inf
    for c in range(2, k):  # pieces 1..c and c..K, each with at least two points
        sse = _line_sse(x[:c], y[:c]) + _line_sse(x[c - 1 :], y[c - 1 :])
        if sse < best_sse - 1e-12 * max(1.0, abs(sse)):
            best, best_sse = c, sse
    return best


def _line_sse(x: FloatArray, y: FloatArray) -> float:
    if x.size <= 2:
        return 0.0
    coef = np.polyfit(x, y, 1)
    return float(np.sum((np.polyval(coef, x) - y) ** 2))


def _groups_at(k: int, path: list[MergeStep], n_segments: int) -> list[list[int]]:
    """The groups after the merges of ``path`` that leave ``n_segments``."""
    groups = {c: [c] for c in range(k)}
    for step in path:
        if step.n_segments < n_segments:
            break
        groups[step.kept] = sorted(groups[step.kept] + groups.pop(step.absorbed))
    return [groups[c] for c in sorted(groups)]


def _check_resp(resp: ArrayLike) -> FloatArray:
    resp = np.asarray(resp, dtype=float)
    if resp.ndim != 2 or resp.shape[0] == 0 or resp.shape[1] == 0:
        raise ValueError(f"resp must be an (n, K) array of posteriors, got shape {resp.shape}")
    if not np.all(np.isfinite(resp)) or np.any(resp < 0):
        raise ValueError("resp must hold finite, non-negative posteriors")
    if not np.allclose(resp.sum(axis=1), 1.0, rtol=0, atol=1e-6):
        raise ValueError("each row of resp must sum to 1")
    return resp


def segment_moments(
    weights: ArrayLike, means: ArrayLike, covariances: ArrayLike, component_segment: list[int]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Weight, mean and covariance of each segment's mixture (moment matching):

        w_s = Σ_{k∈s} w_k,   μ_s = Σ_{k∈s} w_k μ_k / w_s,
        Σ_s = Σ_{k∈s} w_k (Σ_k + (μ_k − μ_s)(μ_k − μ_s)ᵀ) / w_s.

    ``covariances`` are full (K, d, d); segments are numbered 0..S−1 as in ``component_segment``.
    """
    w = np.asarray(weights, dtype=float)
    mu = np.asarray(means, dtype=float)
    cov = np.asarray(covariances, dtype=float)
    labels = np.asarray(component_segment, dtype=np.int64)
    n_segments = int(labels.max()) + 1
    d = mu.shape[1]
    out_w = np.zeros(n_segments)
    out_mu = np.zeros((n_segments, d))
    out_cov = np.zeros((n_segments, d, d))
    for s in range(n_segments):
        members = np.flatnonzero(labels == s)
        ws = w[members]
        out_w[s] = ws.sum()
        out_mu[s] = ws @ mu[members] / out_w[s]
        dev = mu[members] - out_mu[s]
        spread = cov[members] + dev[:, :, None] * dev[:, None, :]
        out_cov[s] = np.einsum("k,kij->ij", ws, spread) / out_w[s]
    return out_w, out_mu, out_cov
