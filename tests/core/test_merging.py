"""Components merged into segments (em_core.merging): DEMP (Hennig 2010) and the entropy path
(Baudry et al. 2010), against hand-computed values and on data whose segments are known."""

import numpy as np
import pytest

from em_core import GaussianMixture, adjusted_rand_index, select_model
from em_core.merging import (
    DEMP_CUTOFF,
    MergeStep,
    _demp_level,
    demp,
    elbow,
    entropy_decrease,
    merge_components,
    posterior_entropy,
    segment_posteriors,
)

pytestmark = pytest.mark.filterwarnings("ignore::em_core.ConvergenceWarning")


def _resp(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=float)


def test_demp_is_the_share_of_a_groups_mass_the_pairwise_bayes_rule_gives_away():
    resp = _resp([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.0, 0.2, 0.8]])
    # rows 0-1 go to column 0, rows 2-3 to column 1 (between the two)
    to_0 = (0.1 + 0.4) / (0.1 + 0.4 + 0.7 + 0.2)  # of column 1's mass
    to_1 = 0.3 / (0.9 + 0.6 + 0.3)  # of column 0's mass
    assert demp(resp, 0, 1) == pytest.approx(max(to_0, to_1))


def test_entropy_decrease_and_segment_posteriors_by_hand():
    resp = _resp([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    merged = segment_posteriors(resp, [0, 0, 1], 2)
    np.testing.assert_allclose(merged, [[1.0, 0.0], [0.5, 0.5]])
    assert posterior_entropy(resp) - posterior_entropy(merged) == pytest.approx(
        entropy_decrease(resp, 0, 1)
    )
    assert posterior_entropy(merged) == pytest.approx(np.log(2.0))


def test_merge_path_runs_to_one_segment_with_entropy_falling_to_zero():
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(5) * 0.5, size=400)
    result = merge_components(resp, "demp")
    assert [step.n_segments for step in result.path] == [4, 3, 2, 1]
    assert len(result.entropies) == 5 and result.entropies[0] == pytest.approx(0.0, abs=1e-9)
    assert result.entropies[-1] == pytest.approx(posterior_entropy(resp))
    assert np.all(np.diff(result.entropies) >= -1e-9)  # merging never raises EN
    np.testing.assert_allclose(result.posteriors(resp).sum(axis=1), 1.0)


def test_well_separated_gaussian_clusters_are_not_merged():
    rng = np.random.default_rng(1)
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    X = np.vstack([rng.normal(size=(400, 2)) + c for c in centers])
    truth = np.repeat(np.arange(4), 400)
    gm = GaussianMixture(4, random_state=0).fit(X)
    result = merge_components(gm.predict_proba(X))
    assert result.n_segments == 4 and sorted(result.component_segment) == [0, 1, 2, 3]
    assert adjusted_rand_index(truth, result.posteriors(gm.predict_proba(X)).argmax(1)) == 1.0


def test_a_skewed_cluster_fitted_by_several_components_ends_in_one_segment():
    rng = np.random.default_rng(0)
    skewed = np.exp(rng.normal(size=(1500, 2)) * [0.8, 0.5])
    X = np.vstack([skewed, rng.normal(size=(500, 2)) * 0.5 + [12.0, 6.0]])
    truth = np.repeat([0, 1], [1500, 500])
    res = select_model(X, range(1, 7), ["full"], n_init=2, random_state=0)
    assert res.best.n_components >= 3  # BIC fits the skewed cluster with several components
    resp = res.best.predict_proba(X)
    result = merge_components(resp)
    assert result.n_segments == 2
    assert adjusted_rand_index(truth, result.posteriors(resp).argmax(1)) == 1.0


def _three_clusters_and_a_speck() -> tuple[np.ndarray, np.ndarray]:
    """Three clusters of 600 and a well-separated speck of 15 (0.8 %) nearest to cluster 1."""
    rng = np.random.default_rng(4)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [16.0, 0.0]])
    sizes = [600, 600, 600, 15]
    X = np.vstack([rng.normal(size=(m, 2)) * 0.7 + c for m, c in zip(sizes, centers, strict=True)])
    return X, np.repeat(np.arange(4), sizes)


@pytest.mark.parametrize("method", ["demp", "entropy"])
def test_a_group_below_min_share_joins_its_nearest_group_first(method):
    X, truth = _three_clusters_and_a_speck()
    gm = GaussianMixture(4, random_state=0, prior="default").fit(X)
    resp = gm.predict_proba(X)
    speck = int(np.bincount(resp.argmax(1)[truth == 3], minlength=4).argmax())
    nearest = int(np.bincount(resp.argmax(1)[truth == 1], minlength=4).argmax())
    if method == "demp":
        assert merge_components(resp, method).n_segments == 4  # far apart: no DEMP merge
    result = merge_components(resp, method, min_share=0.02)
    first = result.path[0]
    assert first.forced and {first.kept, first.absorbed} == {speck, nearest}
    assert not any(step.forced for step in result.path[1:])
    assert result.component_segment[speck] == result.component_segment[nearest]
    shares = result.posteriors(resp).mean(axis=0)
    assert result.n_segments == 3 and shares.min() >= 0.02
    merged_truth = np.where(truth == 3, 1, truth)
    assert adjusted_rand_index(merged_truth, result.posteriors(resp).argmax(1)) == 1.0


def test_min_share_zero_leaves_the_path_unforced():
    rng = np.random.default_rng(5)
    resp = rng.dirichlet(np.ones(6) * 0.3, size=200)
    plain, zero = merge_components(resp), merge_components(resp, min_share=0.0)
    assert plain == zero and not any(step.forced for step in plain.path)


def test_a_fixed_number_of_segments_cuts_the_same_path():
    rng = np.random.default_rng(2)
    resp = rng.dirichlet(np.ones(6), size=300)
    full = merge_components(resp, "entropy")
    for s in range(1, 7):
        cut = merge_components(resp, "entropy", n_segments=s)
        assert cut.n_segments == s and cut.path == full.path
        assert len(set(cut.component_segment)) == s


def _path(values: list[float]) -> list[MergeStep]:
    k = len(values) + 1
    return [MergeStep(k - 1 - i, 0, i + 1, v, 0.0) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("values", "gap", "cutoff"),
    [
        # components of four segments, then the first merge of two segments (measured on the
        # sample generator at 20,000 customers): the cutoff allows one merge too many
        ([0.4365, 0.3561, 0.029, 0.0146, 0.0057], 4, 3),
        ([0.3017, 0.0267, 0.0155, 0.0065], 4, 3),  # at 5,000 customers
        # at 2,000 the sample's four segments are the four components: the one merge the cutoff
        # allows (two true segments, 0.041) is far from a coin flip, so nothing is merged
        ([0.0406, 0.0159, 0.006], 4, 3),
        ([0.286, 0.325, 0.224, 0.16, 1e-9], 2, 2),  # every merge allowed, the last gap decides
        ([0.2, 0.001], 2, 2),  # one clear merge
        ([0.01, 0.001], 3, 3),  # nothing overlaps enough: no merge
    ],
)
def test_demp_stops_after_the_largest_drop_among_the_merges_the_cutoff_allows(values, gap, cutoff):
    k = len(values) + 1
    assert _demp_level(_path(values), k, 0.025, "gap") == gap
    assert _demp_level(_path(values), k, 0.025, "cutoff") == cutoff


@pytest.mark.parametrize(
    ("values", "segments"),
    [
        # merge paths measured by bench/segments.py (four true segments each): merges inside a
        # segment had DEMP ≥ 0.06, merges of two true segments ≤ 0.04
        ([0.19, 0.178, 0.096, 0.06, 0.03, 0.022, 0.02], 4),  # orders, 2,000, seed 1
        ([0.221, 0.219, 0.244, 0.064, 0.037, 0.034, 0.018], 4),  # orders, 20,000, seed 0
        ([0.301, 0.088, 0.082, 0.026, 0.021, 0.014], 4),  # orders, 2,000, seed 4
        ([0.486, 0.43, 0.34, 0.353, 0.04, 0.015, 0.012], 4),  # lognormal, 20,000
        ([0.0406, 0.0159, 0.006], 4),  # lognormal, 2,000: the components are the segments
    ],
)
def test_the_default_stop_keeps_groups_that_exchange_under_five_percent(values, segments):
    k = len(values) + 1
    assert _demp_level(_path(values), k, DEMP_CUTOFF, "cutoff") == segments


def test_the_gap_stop_ends_at_the_cutoff_when_every_merge_is_allowed():
    # a 0 after the last merge would make "one segment" win by an infinite drop
    values = [0.29, 0.198, 0.164, 0.08, 0.031, 0.029, 0.027]
    assert _demp_level(_path(values), 8, 0.025, "gap") == 4


def test_elbow_of_a_two_piece_line():
    assert elbow([0.0, 10.0, 20.0, 21.0, 22.0, 23.0]) == 3
    assert elbow([0.0, 1.0]) == 2


@pytest.mark.parametrize(
    ("resp", "kwargs", "message"),
    [
        (np.ones((3, 2)), {}, "sum to 1"),
        (np.full((3, 2), np.nan), {}, "finite"),
        (np.ones(3), {}, "shape"),
        (np.full((3, 2), 0.5), {"method": "ward"}, "method"),
        (np.full((3, 2), 0.5), {"n_segments": 3}, "n_segments"),
        (np.full((3, 2), 0.5), {"cutoff": 2.0}, "cutoff"),
        (np.full((3, 2), 0.5), {"stop": "never"}, "stop"),
        (np.full((3, 2), 0.5), {"min_share": 1.0}, "min_share"),
        (np.full((3, 2), 0.5), {"min_share": -0.1}, "min_share"),
    ],
)
def test_bad_input_is_named(resp, kwargs, message):
    with pytest.raises(ValueError, match=message):
        merge_components(resp, **kwargs)


def test_segment_moments_match_the_mixtures_moments():
    from em_core.merging import segment_moments

    rng = np.random.default_rng(3)
    w = np.array([0.2, 0.3, 0.5])
    mu = rng.normal(size=(3, 2))
    a = rng.normal(size=(3, 2, 2))
    cov = a @ np.swapaxes(a, 1, 2) + np.eye(2)
    ws, ms, cs = segment_moments(w, mu, cov, [0, 1, 0])
    np.testing.assert_allclose(ws, [0.7, 0.3])
    np.testing.assert_allclose(ms[1], mu[1])
    np.testing.assert_allclose(cs[1], cov[1])
    # segment 0 against a large sample of its two-component mixture
    n = 400_000
    pick = rng.random(n) < 0.2 / 0.7
    draws = np.where(
        pick[:, None],
        rng.multivariate_normal(mu[0], cov[0], n),
        rng.multivariate_normal(mu[2], cov[2], n),
    )
    np.testing.assert_allclose(ms[0], draws.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(cs[0], np.cov(draws.T), atol=0.03)
