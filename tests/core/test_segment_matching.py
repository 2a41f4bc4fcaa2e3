"""match_segments: tonight's segments continue the champion's by mutual majority of customers."""

import numpy as np
import pytest

from em_core import match_segments


def _onehot(labels, k) -> np.ndarray:
    return np.eye(k)[np.asarray(labels)]


def test_relabelled_segments_are_matched_back():
    rng = np.random.default_rng(0)
    old = rng.dirichlet(np.ones(4) * 0.2, size=500)  # soft, mostly confident posteriors
    perm = np.array([2, 0, 3, 1])
    new = old[:, perm]  # tonight's segment i is the champion's perm[i]
    match, transitions = match_segments(new, old)
    assert match.tolist() == perm.tolist()
    assert transitions.sum() == pytest.approx(500.0)


def test_a_segment_that_takes_a_minority_of_an_old_one_is_new():
    old_labels = np.repeat([0, 1, 2], [300, 300, 100])
    new_labels = np.repeat([1, 0, 2], [300, 300, 100])
    new_labels[600:] = 3  # segment 2's customers now form segment 3 ...
    old = _onehot(old_labels, 3)
    new = _onehot(new_labels, 4)
    new[600:, 3] = 0.4  # ... about whom tonight's model is unsure
    new[600:, 2] = 0.6
    match, _ = match_segments(new, old)
    assert match[:2].tolist() == [1, 0]
    assert match[2] == 2  # most of 2's mass (60 of 100) and all of new 2's mass: mutual majority
    assert match[3] == -1  # all its mass comes from 2, but only 40 % of 2's mass goes to it


@pytest.mark.parametrize("split", [0.5, 0.4])
def test_a_split_keeps_the_id_only_where_a_majority_went(split):
    old = _onehot(np.repeat([0, 1], [400, 600]), 2)
    n_a = int(400 * split)
    new = _onehot(np.repeat([0, 1, 2], [n_a, 400 - n_a, 600]), 3)
    match, _ = match_segments(new, old)
    assert match[2] == 1
    # 200/200: neither half carries the old segment; 160/240: the larger half holds 60 % of it
    assert match[:2].tolist() == ([-1, -1] if split == 0.5 else [-1, 0])


def test_a_merge_keeps_the_id_of_the_segment_that_dominates_it():
    old = _onehot(np.repeat([0, 1, 2], [500, 100, 400]), 3)
    new = _onehot(np.repeat([0, 1], [600, 400]), 2)  # old 0 and 1 merged
    match, _ = match_segments(new, old)
    assert match.tolist() == [0, 2]  # 500 of the merged 600 came from 0, all of 0 went there


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="same n"):
        match_segments(np.ones((3, 2)) / 2, np.ones((4, 2)) / 2)


def test_segment_distances_of_single_component_segments_are_the_component_distances():
    from em_core import GaussianMixture, component_distances
    from em_core.alignment import segment_distances

    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(200, 2)) + c for c in ([0, 0], [5, 0], [0, 5])])
    a = GaussianMixture(3, random_state=0).fit(X)
    b = GaussianMixture(3, random_state=1).fit(X[::2])
    dist, means = segment_distances(a, [0, 1, 2], b, [0, 1, 2])
    np.testing.assert_allclose(dist, component_distances(a, b), rtol=1e-10)
    np.testing.assert_allclose(means, a.means_)
    merged, merged_means = segment_distances(a, [0, 0, 1])
    assert merged.shape == (2, 0)
    w = a.weights_
    np.testing.assert_allclose(
        merged_means[0], (w[0] * a.means_[0] + w[1] * a.means_[1]) / (w[0] + w[1])
    )
