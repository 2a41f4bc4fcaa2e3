"""Simulated e-commerce order data: integer order counts and cart sizes, one-time buyers whose
visit rate and recency are tied through their tenure, skewed spend with a few whales."""

import numpy as np

COLUMNS = ("orders", "items_per_order", "visit_rate", "recency_days", "spend_per_order")


def make_order_data(n: int, seed: int = 0, one_time_share: float = 0.4) -> np.ndarray:
    """(n, 5) matrix in the feature space a segmentation uses: log1p of the counts, rates and
    amounts, each column standardised. Ties abound: every one-time buyer has orders = 1, and
    for them visit_rate = 1 / tenure and recency = tenure exactly."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 730, n).astype(float)
    one_time = rng.random(n) < one_time_share
    loyal = rng.random(n) < 0.3
    orders = np.where(
        one_time, 1, 2 + rng.poisson(np.where(loyal, 12.0, 3.0) * tenure / 365.0)
    ).astype(float)
    items = np.maximum(1, rng.poisson(np.where(loyal, 3.0, 1.5), n)).astype(float)
    visit_rate = orders / tenure
    recency = np.where(one_time, tenure, np.floor(rng.exponential(tenure / orders)))
    spend = np.round(rng.lognormal(np.where(loyal, 4.0, 3.2), 0.6, n), 2)
    whales = rng.random(n) < 0.005
    spend[whales] *= rng.uniform(20, 60, whales.sum())
    X = np.log1p(np.column_stack([orders, items, visit_rate * 100, recency, spend]))
    return (X - X.mean(axis=0)) / X.std(axis=0)
