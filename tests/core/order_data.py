"""Simulated e-commerce order data: integer order counts and cart sizes, one-time buyers whose
visit rate and recency are tied through their tenure, skewed spend with a few whales."""

import numpy as np

COLUMNS = ("orders", "items_per_order", "visit_rate", "recency_days", "spend_per_order")


def make_order_data(n: int, seed: int = 0, one_time_share: float = 0.4) -> np.ndarray:
    """(n, 5) matrix in the feature space a segmentation uses: log1p of the counts, rates and
    amounts, each column standardised. Ties abound: every one-time buyer has orders = 1, and
    for them visit_rate = 1 / tenure and recency = tenure exactly."""
    return order_segments(n, seed, one_time_share)[0]


def order_segments(
    n: int, seed: int = 0, one_time_share: float = 0.4
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`make_order_data` and each customer's true segment: 2·one_time + loyal, four
    segments (casual and loyal repeat buyers, casual and loyal one-time buyers)."""
    raw, truth = order_segments_raw(n, seed, one_time_share)
    X = np.log1p(np.column_stack(list(raw.values())))
    return (X - X.mean(axis=0)) / X.std(axis=0), truth


def order_segments_raw(
    n: int, seed: int = 0, one_time_share: float = 0.4
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The order data's columns in original units (visit rate per 100 days) and the truth."""
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
    columns = dict(zip(COLUMNS, [orders, items, visit_rate * 100, recency, spend], strict=True))
    return columns, 2 * one_time.astype(int) + loyal.astype(int)


STORE_COLUMNS = ("total_spend", "visits_per_month", "avg_cart_size", "days_since_last_order")
#: Shares of the store's latent customer types: one-time, occasional, regular, collector.
STORE_SHARES = (0.5, 0.3, 0.15, 0.05)


def store_customers(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A single-cohort music store in the pipeline's schema (original units) and each
    customer's latent type: every customer's first order fell in one quarter and the drop
    comes 15-18 months later, half of them never came back. Ties abound: a one-time buyer's
    recency is their tenure and their cart size an integer, prices cluster around 13.5."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(450, 546, n).astype(float)
    kind = rng.choice(len(STORE_SHARES), n, p=STORE_SHARES)
    extra_orders = rng.poisson(np.array([0.0, 1.0, 6.0, 15.0])[kind])
    orders = np.array([1, 2, 4, 8])[kind] + extra_orders
    items = np.maximum(1, rng.poisson(np.where(kind == 3, 3.0, 1.2) * orders))
    price = np.round(np.clip(rng.normal(13.5, 2.0, n), 5.0, 30.0), 2)
    gap = np.floor(rng.exponential(tenure / orders)).clip(0, tenure)
    columns = {
        "total_spend": np.round(items * price, 2),
        "visits_per_month": np.round(orders / (tenure / 30.4), 3),
        "avg_cart_size": np.round(items / orders, 2),
        "days_since_last_order": np.where(orders == 1, tenure, gap),
    }
    return columns, kind


def make_store_data(n: int, seed: int = 0) -> np.ndarray:
    """:func:`store_customers` in the pipeline's default feature space: log1p of spend, visit
    rate and cart size, recency as is, every column standardised."""
    columns, _ = store_customers(n, seed)
    X = np.column_stack([columns[c] for c in STORE_COLUMNS])
    X[:, :3] = np.log1p(X[:, :3])
    return (X - X.mean(axis=0)) / X.std(axis=0)
