"""select_model(k_limit=): the chosen type is tried at larger K while BIC chooses the top."""

import numpy as np
import pytest

from em_core import select_model
from em_core.selection import EXTENSION_STEP


def _six_clusters(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0], [9, 0], [0, 9], [9, 9], [18, 0], [18, 9]], dtype=float)
    return np.vstack([rng.normal(size=(150, 2)) + c for c in centers])


def _keys(result) -> list[tuple[int, str]]:
    return [(r["n_components"], r["covariance_type"]) for r in result.table]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_range_that_stops_short_is_extended_until_bic_turns(n_jobs):
    X = _six_clusters()
    kw = dict(n_init=2, random_state=0)
    result = select_model(X, range(1, 4), ["full", "spherical"], k_limit=10, n_jobs=n_jobs, **kw)
    assert result.best.n_components == 6
    best_type = result.table[result.best_index]["covariance_type"]
    added = _keys(result)[6:]
    # rounds of EXTENSION_STEP for the chosen type only, until the choice is below the top
    assert added == [(k, best_type) for k in range(4, 8)] and EXTENSION_STEP == 2
    # the same fits as if the range had held them: seeds depend on (K, type) only
    wide = select_model(X, range(1, 8), [best_type], **kw)
    for (k, ct), gm in result.models.items():
        if ct == best_type:
            assert gm.log_likelihood_ == wide.models[(k, ct)].log_likelihood_
    assert result.best.log_likelihood_ == wide.best.log_likelihood_


def test_no_extension_without_k_limit_or_when_the_choice_is_inside_the_range():
    X = _six_clusters()
    short = select_model(X, range(1, 4), ["full"], n_init=1, random_state=0)
    assert [k for k, _ in _keys(short)] == [1, 2, 3] and short.best.n_components == 3
    capped = select_model(X, range(1, 4), ["full"], n_init=1, random_state=0, k_limit=3)
    assert _keys(capped) == _keys(short)
    inside = select_model(X, range(1, 9), ["full"], n_init=1, random_state=0, k_limit=12)
    assert [k for k, _ in _keys(inside)] == list(range(1, 9))


def test_the_callback_counts_extension_rounds():
    seen = []
    select_model(
        _six_clusters(), range(1, 4), ["full"], n_init=1, random_state=0, k_limit=5,
        callback=lambda row: seen.append((row["index"], row["total"], row["n_components"])),
    )  # fmt: skip
    assert seen == [(0, 3, 1), (1, 3, 2), (2, 3, 3), (3, 5, 4), (4, 5, 5)]


@pytest.mark.parametrize("bad", [2.5, "8", True])
def test_a_bad_k_limit_is_named(bad):
    with pytest.raises(ValueError, match="k_limit"):
        select_model(_six_clusters(), range(1, 3), ["full"], k_limit=bad)
