"""Deterministic sample customer drops: realistic order data, missing cells and a few bad rows.

Two generators, both with ground truth for the tests:

- ``"orders"`` simulates each customer's order history
  and reports it the way a shop's export does. Four latent segments: one-time buyers, occasional
  buyers, loyal regulars and bulk buyers. Orders and items are integers: a customer with ``N``
  orders over a tenure of ``T`` days has ``visits_per_month = N / T · 30.44`` and an
  ``avg_cart_size`` of items / ``N``, so a one-time buyer (``N = 1``) has a whole-number cart, a
  visit rate of ``30.44 / T`` and ``days_since_last_order = T``: the three features are tied
  through tenure and the segment is a curve, not a Gaussian blob. ``total_spend`` is net revenue:
  skewed item prices, rare whales (15-60× spend), refunds (a fully refunded one-time buyer spends
  exactly 0) and a few chargebacks that make it negative.
- ``"lognormal"`` draws the four features of four segments (occasional bargain hunters, regulars,
  high-value loyal customers and lapsing customers) from log-normal distributions: a simpler
  population whose segments are close to Gaussian after ``log1p``.

Either blanks ``missing_rate`` of the cells at random (never a whole row of a good customer) and
:func:`write_sample_drop` appends bad rows of every kind the ingest step must quarantine and
writes the drop as the files a real export would produce: a CSV, a Parquet file and a late CSV
export with an unexpected column.

To simulate a sequence of nights, :func:`write_sample_drop` can also shuffle the rows, add new
customers (from the same latent segments), let some customers leave, add customers of a genuinely
new fifth latent segment (true segment id 4: bulk buyers with very large carts in ``"lognormal"``,
resellers in ``"orders"``) and corrupt the drop (``corrupt="spend_in_cents"``: an export bug that
writes ``total_spend`` in cents).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from em_pipeline.lib.schema import CustomerSchema

# (name, share, total_spend log-mean, visits log-mean, cart log-mean, days mean)
_SEGMENTS = (
    ("occasional bargain hunters", 0.40, np.log(120.0), np.log(1.2), np.log(2.0), 60.0),
    ("regulars", 0.30, np.log(650.0), np.log(4.0), np.log(4.0), 14.0),
    ("high-value loyal", 0.15, np.log(3500.0), np.log(9.0), np.log(7.0), 5.0),
    ("lapsing", 0.15, np.log(300.0), np.log(0.4), np.log(3.0), 200.0),
)
# a fifth latent segment that the base population does not have (true segment id 4)
NEW_SEGMENT = ("bulk buyers", 1.0, np.log(1500.0), np.log(0.8), np.log(30.0), 40.0)
CORRUPTIONS = ("spend_in_cents",)

Generator = Literal["orders", "lognormal"]
GENERATORS: tuple[Generator, ...] = ("orders", "lognormal")
DAYS_PER_MONTH = 30.44
# (name, share, orders per month, extra items per order, item price EUR, shortest tenure in days)
ORDER_SEGMENTS = (
    ("one-time buyers", 0.35, 0.0, 0.6, 22.0, 1),
    ("occasional buyers", 0.30, 0.30, 0.8, 20.0, 30),
    ("loyal regulars", 0.25, 2.5, 1.5, 26.0, 30),
    ("bulk buyers", 0.10, 0.6, 9.0, 30.0, 30),
)
# the genuinely new segment of the order generator (true segment id 4)
NEW_ORDER_SEGMENT = ("resellers", 1.0, 4.0, 25.0, 12.0, 30)


@dataclass(frozen=True)
class SampleDrop:
    """What :func:`write_sample_drop` wrote, with the ground truth the tests check against."""

    folder: Path
    files: list[Path]
    good_ids: list[str]
    bad_ids: dict[str, str]  # customer_id (or row tag) -> expected quarantine reason prefix
    n_bad_rows: int
    true_segment: dict[str, int]


def generate_customers(
    n_customers: int = 2000,
    *,
    seed: int = 0,
    missing_rate: float = 0.10,
    id_prefix: str | None = None,
    new_segment: bool = False,
    generator: Generator = "lognormal",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Good customers in original units, with NaN cells, and their true latent segment.

    Ids are ``<id_prefix><i:06d>`` (default prefix ``C<seed:02d>``). ``new_segment=True`` draws
    every customer from the generator's new segment instead (true segment 4).
    """
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
    if n_customers < 1 or (n_customers < 10 and not new_segment and id_prefix is None):
        raise ValueError("n_customers must be at least 10")
    if not 0.0 <= missing_rate < 0.5:
        raise ValueError("missing_rate must be in [0, 0.5)")
    rng = np.random.default_rng(seed)
    draw = _order_customers if generator == "orders" else _lognormal_customers
    values, z = draw(rng, n_customers, new_segment)
    prefix = id_prefix if id_prefix is not None else f"C{seed:02d}"
    df = pd.DataFrame({"customer_id": [f"{prefix}{i:06d}" for i in range(n_customers)], **values})
    features = list(values)
    mask = rng.random((n_customers, len(features))) < missing_rate
    full_rows = mask.all(axis=1)
    mask[full_rows, rng.integers(0, len(features), size=int(full_rows.sum()))] = False
    cells = df[features].to_numpy(dtype=float, copy=True)
    cells[mask] = np.nan
    df[features] = cells
    return df, z


def _latent_segments(
    rng: np.random.Generator, n: int, segments: tuple, new_segment: bool, base: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into ``segments`` and the true segment ids (``base`` for the new segment)."""
    shares = np.array([s[1] for s in segments])
    row = rng.choice(len(segments), size=n, p=shares / shares.sum())
    return row, (np.full(n, base) if new_segment else row)


def _lognormal_customers(
    rng: np.random.Generator, n: int, new_segment: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    segments = (NEW_SEGMENT,) if new_segment else _SEGMENTS
    row, z = _latent_segments(rng, n, segments, new_segment, len(_SEGMENTS))
    spend_mu, visit_mu, cart_mu, days_mu = (
        np.array([s[c] for s in segments])[row] for c in range(2, 6)
    )
    # spend and visits are correlated inside a segment (more visits, more spend)
    common = rng.normal(size=n)
    spend = np.exp(spend_mu + 0.45 * common + 0.35 * rng.normal(size=n))
    visits = np.exp(visit_mu + 0.30 * common + 0.25 * rng.normal(size=n))
    cart = np.exp(cart_mu + 0.30 * rng.normal(size=n))
    days = np.abs(days_mu * (1.0 + 0.35 * rng.normal(size=n)))
    values = {
        "total_spend": np.round(spend, 2),
        "visits_per_month": np.round(visits, 2),
        "avg_cart_size": np.round(cart, 1),
        "days_since_last_order": np.round(days, 0),
    }
    return values, z


def _order_customers(
    rng: np.random.Generator, n: int, new_segment: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each customer's order history, summarised as the shop's export does.

    Per customer: an order rate r (per month; 0 for one-time buyers), extra items per order e and
    an item price p, each the segment's value times a log-normal factor; a tenure T (days since
    the first order). Orders N = 1 for one-time buyers, else 1 + max(1, Poisson(r·T/30.44)); items
    N + Poisson(e·N); recency T for one-time buyers, else min(⌊Exp(mean 30.44/r)⌋, T − 1); gross
    spend items · p (· 15-60 for the 0.4 % whales), minus refunds (each order refunded with
    probability 5 %, fully or in part) and, for 0.3 %, a chargeback of 1.5 orders.
    """
    segments = (NEW_ORDER_SEGMENT,) if new_segment else ORDER_SEGMENTS
    row, z = _latent_segments(rng, n, segments, new_segment, len(ORDER_SEGMENTS))
    rate, extra, price, min_tenure = (np.array([s[c] for s in segments])[row] for c in range(2, 6))
    rate = rate * rng.lognormal(0.0, 0.35, n)
    extra = extra * rng.lognormal(0.0, 0.30, n)
    price = price * rng.lognormal(0.0, 0.35, n)
    one_time = rate == 0
    tenure = rng.integers(min_tenure, 731).astype(float)
    orders = np.where(one_time, 1, 1 + np.maximum(1, rng.poisson(rate * tenure / DAYS_PER_MONTH)))
    gap = np.floor(rng.exponential(DAYS_PER_MONTH / np.where(one_time, 1.0, rate)))
    recency = np.where(one_time, tenure, np.minimum(gap, tenure - 1))
    items = orders + rng.poisson(extra * orders)
    gross = items * price * rng.lognormal(0.0, 0.10, n)
    whale = rng.random(n) < 0.004
    gross[whale] *= rng.uniform(15.0, 60.0, int(whale.sum()))
    refunded_share = rng.binomial(orders, 0.05) / orders
    refund = gross * refunded_share * np.where(rng.random(n) < 0.5, 1.0, rng.uniform(0.2, 0.8, n))
    chargeback = (rng.random(n) < 0.003) * 1.5 * gross / orders
    values = {
        "total_spend": np.round(gross - refund - chargeback, 2),
        "visits_per_month": np.round(orders / tenure * DAYS_PER_MONTH, 3),
        "avg_cart_size": np.round(items / orders, 2),
        "days_since_last_order": recency,
    }
    return values, z


def _bad_rows(seed: int, template: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """One or more rows of each quarantine reason (as strings, the way a CSV carries them)."""
    ok = template.iloc[0]
    rows = []
    expected: dict[str, str] = {}

    def row(cid: str, **over: str) -> dict[str, str]:
        base = {c: ("" if pd.isna(ok[c]) else str(ok[c])) for c in template.columns}
        base["total_spend"] = base["total_spend"] or "100.0"
        base["customer_id"] = cid
        base.update(over)
        return base

    rows.append(row(f"B{seed:02d}unparse1", total_spend="12,50 EUR"))
    expected[f"B{seed:02d}unparse1"] = "unparseable_number"
    rows.append(row(f"B{seed:02d}unparse2", visits_per_month="three"))
    expected[f"B{seed:02d}unparse2"] = "unparseable_number"
    # a last order 3 days in the future (spend may be negative: refunds exceed purchases)
    rows.append(row(f"B{seed:02d}negative", days_since_last_order="-3"))
    expected[f"B{seed:02d}negative"] = "negative_value"
    rows.append(
        row(
            f"B{seed:02d}allmissing",
            total_spend="",
            visits_per_month="",
            avg_cart_size="",
            days_since_last_order="",
        )
    )
    expected[f"B{seed:02d}allmissing"] = "all_features_missing"
    rows.append(row(""))
    expected[""] = "missing_id"
    # a duplicated id: both copies are quarantined, because neither can be trusted
    rows.append(row(f"B{seed:02d}dup", total_spend="10.0"))
    rows.append(row(f"B{seed:02d}dup", total_spend="99.0"))
    expected[f"B{seed:02d}dup"] = "duplicate_id"
    return pd.DataFrame(rows, columns=list(template.columns)), expected


def write_sample_drop(
    folder: str | Path,
    *,
    n_customers: int = 2000,
    seed: int = 0,
    missing_rate: float = 0.10,
    schema: CustomerSchema | None = None,
    shuffle_seed: int | None = None,
    n_new: int = 0,
    n_leaving: int = 0,
    n_new_segment: int = 0,
    night: int = 1,
    corrupt: str | None = None,
    generator: Generator = "lognormal",
) -> SampleDrop:
    """Write a deterministic sample drop into ``folder`` (created; existing sample files replaced).

    Files: ``customers_web.csv`` (first half plus the bad rows, as text),
    ``customers_store.parquet`` (second half, typed), and ``customers_late_export.csv`` (five
    customers exported by a tool that adds an unexpected ``coupon_code`` column).

    Nightly variations of the same base population (``n_customers``, ``seed``): ``n_leaving``
    base customers (chosen by ``night``) are left out, ``n_new`` new customers of the same latent
    segments (ids ``N<night:03d>…``) and ``n_new_segment`` customers of :data:`NEW_SEGMENT` (ids
    ``S<night:03d>…``, true segment 4) are added, the rows are shuffled with ``shuffle_seed``
    (None = generation order), and ``corrupt="spend_in_cents"`` multiplies every ``total_spend``
    by 100 (an export bug). ``generator`` picks the population (module docstring).
    """
    schema = schema or CustomerSchema()
    if set(schema.columns) != set(CustomerSchema().columns):
        raise ValueError("the sample generator only produces the default customer schema")
    if corrupt is not None and corrupt not in CORRUPTIONS:
        raise ValueError(f"corrupt must be one of {CORRUPTIONS} or None, got {corrupt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("customers_*"):
        old.unlink()
    df, z = _nightly_population(
        n_customers, seed, missing_rate, n_new, n_leaving, n_new_segment, night, shuffle_seed,
        generator,
    )  # fmt: skip
    if corrupt == "spend_in_cents":
        df["total_spend"] = np.round(df["total_spend"] * 100.0, 0)
    return _write_drop(folder, df, z, seed)


def _nightly_population(
    n_customers: int,
    seed: int,
    missing_rate: float,
    n_new: int,
    n_leaving: int,
    n_new_segment: int,
    night: int,
    shuffle_seed: int | None,
    generator: Generator,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The night's customers and their true segments: the base population less ``n_leaving``,
    plus the new ones, shuffled (see :func:`write_sample_drop`)."""
    df, z = generate_customers(
        n_customers, seed=seed, missing_rate=missing_rate, generator=generator
    )
    night_seed = 1000 * (seed + 1) + night
    if n_leaving:
        # the five late-export customers (rows 0..4) always stay, so the file layout is stable
        rng = np.random.default_rng(night_seed)
        gone = rng.choice(np.arange(5, len(df)), size=n_leaving, replace=False)
        keep = np.setdiff1d(np.arange(len(df)), gone)
        df, z = df.iloc[keep].reset_index(drop=True), z[keep]
    extra = []
    if n_new:
        extra.append(
            generate_customers(
                n_new,
                seed=night_seed + 1,
                missing_rate=missing_rate,
                id_prefix=f"N{night:03d}",
                generator=generator,
            )
        )
    if n_new_segment:
        extra.append(
            generate_customers(
                n_new_segment,
                seed=night_seed + 2,
                missing_rate=missing_rate,
                id_prefix=f"S{night:03d}",
                new_segment=True,
                generator=generator,
            )
        )
    if extra:
        df = pd.concat([df, *(e[0] for e in extra)], ignore_index=True)
        z = np.concatenate([z, *(e[1] for e in extra)])
    if shuffle_seed is not None:
        # the late-export rows stay first; everything else changes order
        order = np.concatenate(
            [np.arange(5), 5 + np.random.default_rng(shuffle_seed).permutation(len(df) - 5)]
        )
        df, z = df.iloc[order].reset_index(drop=True), z[order]
    return df, z


def _write_drop(folder: Path, df: pd.DataFrame, z: np.ndarray, seed: int) -> SampleDrop:
    """The three files of a drop, with the bad rows added to the web export."""
    n_late = 5
    late, main = df.iloc[:n_late], df.iloc[n_late:]
    half = len(main) // 2
    web, store = main.iloc[:half], main.iloc[half:]
    bad, expected = _bad_rows(seed, df)

    web_text = pd.concat([web.astype(object).where(web.notna(), ""), bad], ignore_index=True)
    web_text = web_text.astype(str)
    files = [folder / "customers_web.csv", folder / "customers_store.parquet"]
    web_text.to_csv(files[0], index=False)
    store.to_parquet(files[1], index=False)
    late = late.assign(coupon_code="SPRING10")
    files.append(folder / "customers_late_export.csv")
    late.to_csv(files[2], index=False)
    for cid in late["customer_id"]:
        expected[cid] = "unknown_columns"

    good_ids = [*web["customer_id"], *store["customer_id"]]
    truth = dict(zip(df["customer_id"], z.tolist(), strict=True))
    return SampleDrop(
        folder=folder,
        files=files,
        good_ids=good_ids,
        bad_ids=expected,
        n_bad_rows=len(bad) + n_late,
        true_segment={cid: truth[cid] for cid in good_ids},
    )
