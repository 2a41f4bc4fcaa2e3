"""mclust's model-based hierarchical agglomeration (em_core's EM start) against mclust itself, and
one agglomeration serving every K of a sweep."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from em_core import hierarchical, init, reference
from em_core.hierarchical import agglomerate, hierarchical_partitions

REFERENCE = Path(__file__).parent / "reference"
HC = json.loads((REFERENCE / "mclust_hc.json").read_text())
DATASETS = sorted(k for k in HC if k != "mclust_version")


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("name", DATASETS)
def test_every_level_is_mclusts_partition(name):
    X = pd.read_csv(REFERENCE / "data" / f"{name}.csv").to_numpy(dtype=float)
    ref = HC[name]
    ours = hierarchical_partitions(X, ref["levels"])
    for k, labels in zip(ref["levels"], ref["labels"], strict=True):
        assert same_partition(ours[k], np.array(labels)), f"{name}: level {k}"


def test_levels_are_nested_with_k_groups_labelled_in_order_of_appearance():
    rng = np.random.default_rng(3)
    X = np.round(rng.standard_normal((300, 3)), 1)  # ties: groups of identical rows
    tree = agglomerate(X)
    distinct = len(np.unique(X, axis=0))
    previous = None
    for k in range(1, 40):
        labels = tree.labels(k)
        assert labels.max() + 1 == min(k, distinct)
        _, first = np.unique(labels, return_index=True)
        assert np.array_equal(labels[np.sort(first)], np.arange(labels.max() + 1))
        if previous is not None:  # each group lies within one group of the coarser level
            pairs = set(zip(labels.tolist(), previous.tolist(), strict=True))
            assert len(pairs) == labels.max() + 1
        previous = labels
    identical = np.unique(X, axis=0, return_inverse=True)[1].reshape(-1)
    assert same_partition(tree.labels(X.shape[0]), identical)


@pytest.mark.parametrize("model", ["VVV", "EII"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_compiled_merge_loop_makes_the_numpy_references_merges(model, seed):
    rng = np.random.default_rng(seed)
    n, d = 150 + 100 * seed, 2 + seed
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3, d) + 4 * rng.integers(0, 3, (n, 1))
    X[: n // 10] = X[n // 10 : 2 * (n // 10)]  # groups of identical rows
    Z = hierarchical.transform_for_hc(X, "SVD")
    uniq, counts = np.unique(Z, axis=0, return_counts=True)
    alpha = hierarchical._alpha(uniq, counts)
    compiled = hierarchical.merge_sequence(uniq, counts.astype(np.int64), alpha, model == "VVV")
    in_numpy = reference.merge_sequence(uniq, counts, model, alpha)
    assert np.array_equal(compiled, in_numpy)


def test_one_agglomeration_serves_every_k_of_a_sweep(monkeypatch):
    calls = []
    real = hierarchical.merge_sequence

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(hierarchical, "merge_sequence", counted)
    monkeypatch.setattr(init, "_HC_CACHE", {})
    X = np.random.default_rng(4).standard_normal((500, 4))
    fresh = {k: hierarchical_partitions(X, [k])[k] for k in (2, 9, 10, 16)}
    calls.clear()
    for k in (2, 9, 10, 16, 12):
        labels = init.hierarchical_labels(X, k)
        assert k not in fresh or np.array_equal(labels, fresh[k])
    assert len(calls) == 1
