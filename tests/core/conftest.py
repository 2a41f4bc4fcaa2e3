"""Simulated mixtures with known parameters, shared by the em_core tests."""

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class Mixture:
    X: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray  # (K, d, d)


def make_mixture(
    n: int = 1500,
    d: int = 3,
    k: int = 3,
    *,
    separation: float = 6.0,
    seed: int = 0,
    diagonal: bool = False,
) -> Mixture:
    """Well-separated Gaussian clusters with random correlated (or axis-aligned) covariances."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(scale=separation, size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d))
        cov = a @ a.T / d + 0.3 * np.eye(d)
        if diagonal:
            cov = np.diag(np.diag(cov))
        covs.append(cov)
    covs = np.array(covs)
    labels = rng.choice(k, size=n, p=weights)
    chol = np.linalg.cholesky(covs)
    X = means[labels] + np.einsum("nij,nj->ni", chol[labels], rng.normal(size=(n, d)))
    return Mixture(X, labels, weights, means, covs)


def mcar(X: np.ndarray, rate: float, seed: int = 0) -> np.ndarray:
    """Copy of X with cells missing completely at random; every row keeps one observed cell."""
    rng = np.random.default_rng(seed)
    mask = rng.random(X.shape) < rate
    full = mask.all(axis=1)
    mask[full, rng.integers(X.shape[1], size=full.sum())] = False
    out = X.copy()
    out[mask] = np.nan
    return out


@pytest.fixture(scope="session")
def mixture() -> Mixture:
    return make_mixture()
