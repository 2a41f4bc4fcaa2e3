"""The order-data sample generator has what real order exports have, and ingest keeps all of it:
integer orders and items, one-time buyers tied through their tenure, zero and negative net spend,
whales; nothing a real customer can have is quarantined."""

import numpy as np
import pandas as pd
import pytest

from em_pipeline.lib.sample_data import (
    DAYS_PER_MONTH,
    generate_customers,
    write_sample_drop,
)
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.validation import ingest_folder

N = 20_000


@pytest.fixture(scope="module")
def orders():
    df, truth = generate_customers(N, seed=3, missing_rate=0.0, generator="orders")
    return df, truth


def test_counts_are_whole_numbers_and_every_customer_ordered(orders):
    df, _ = orders
    assert (df["days_since_last_order"] % 1 == 0).all()
    assert (df["avg_cart_size"] >= 1).all()  # at least one item per order
    # at least one order in a tenure of at most two years
    assert (df["visits_per_month"] >= DAYS_PER_MONTH / 730 - 1e-3).all()


def test_one_time_buyers_are_a_curve_in_feature_space(orders):
    df, truth = orders
    one = truth == 0
    product = df.loc[one, "visits_per_month"] * df.loc[one, "days_since_last_order"]
    np.testing.assert_allclose(product, DAYS_PER_MONTH, rtol=0.02)
    assert np.allclose(df.loc[one, "avg_cart_size"] % 1, 0)
    assert df.loc[one, "days_since_last_order"].nunique() > 500


def test_spend_is_skewed_with_whales_refunds_and_chargebacks(orders):
    spend = orders[0]["total_spend"]
    assert (spend == 0).sum() > 20  # fully refunded one-time buyers
    assert (spend < 0).sum() > 5  # chargebacks
    assert spend.max() > 50 * spend.median()
    assert spend.mean() > 2 * spend.median()


def test_each_latent_segment_has_its_share(orders):
    shares = np.bincount(orders[1], minlength=4) / N
    np.testing.assert_allclose(shares, [0.35, 0.30, 0.25, 0.10], atol=0.02)


def test_new_segment_customers_are_resellers_with_huge_carts():
    df, truth = generate_customers(200, seed=1, generator="orders", new_segment=True,
                                   id_prefix="S")  # fmt: skip
    assert (truth == 4).all() and df["avg_cart_size"].median() > 15


def test_generate_customers_defaults_to_lognormal_and_names_an_unknown_generator():
    a, za = generate_customers(300, seed=4)
    b, zb = generate_customers(300, seed=4, generator="lognormal")
    pd.testing.assert_frame_equal(a, b)
    assert (za == zb).all()
    with pytest.raises(ValueError, match="generator must be one of"):
        generate_customers(300, generator="gaussian")


def test_ingest_keeps_every_good_order_customer_and_quarantines_only_bad_rows(tmp_path):
    drop = write_sample_drop(tmp_path / "drop", n_customers=5_000, seed=2, generator="orders")
    res = ingest_folder(drop.folder, CustomerSchema())
    assert sorted(res.snapshot["customer_id"]) == sorted(drop.good_ids)
    assert set(res.quarantine["customer_id"].fillna("")) == set(drop.bad_ids)
    assert (res.snapshot["total_spend"] < 0).any() and (res.snapshot["total_spend"] == 0).any()


def _sweep_failures(X, prior):
    from em_core import select_model

    res = select_model(X, range(1, 9), ["full", "diag"], n_init=1, random_state=0, prior=prior)
    return [(r["n_components"], r["covariance_type"]) for r in res.table if r["degenerate"]]


def test_no_candidate_collapses_on_the_integer_features_once_dequantised():
    from em_pipeline.lib.dequantised import dequantised_features, fit_lattices
    from em_pipeline.lib.transforms import FeatureTransform

    df, _ = generate_customers(3000, seed=1, generator="orders")
    schema = CustomerSchema()
    transform = FeatureTransform.fit(df, schema)
    recorded = transform.transform(df)
    dequantised = dequantised_features(df, schema, transform, fit_lattices(df, schema), seed=0)
    # maximum likelihood on the recorded ties: large candidates collapse onto them
    assert len(_sweep_failures(recorded, None)) >= 2
    # dequantised, no candidate collapses, with or without the prior (the pipeline uses both)
    assert _sweep_failures(dequantised, None) == []
    assert _sweep_failures(dequantised, "default") == []
