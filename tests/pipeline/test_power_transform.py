"""Per-feature power transforms in the pipeline: λ fitted on the night's data, recorded in
transform.json, the model JSON and MLflow, and every round trip exact."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import RUN_DATE, failure_messages, run_pipeline

from em_pipeline.defs.resources import CustomerSchemaResource
from em_pipeline.lib.sample_data import generate_customers
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.transforms import FeatureTransform

PINNED = {"days_since_last_order": "none"}


MARGINAL = {"mixture_power_transform": False, "power_transform": True}
FIXED = {"mixture_power_transform": False}


def test_schema_resource_resolves_pinned_then_mixture_then_power_then_log_then_log1p():
    default = CustomerSchemaResource(pinned_transforms=PINNED).get()
    assert [f.transform for f in default.features] == ["mixture"] * 3 + ["none"]
    schema = CustomerSchemaResource(**MARGINAL, pinned_transforms=PINNED).get()
    assert [f.transform for f in schema.features] == ["auto", "auto", "auto", "none"]
    legacy = CustomerSchemaResource(**FIXED).get()
    assert [f.transform for f in legacy.features] == ["log1p", "log", "log1p", "log1p"]
    plain = CustomerSchemaResource(**FIXED, log_features=[], log1p_features=["total_spend"]).get()
    assert [f.transform for f in plain.features] == ["log1p", "none", "none", "none"]
    with pytest.raises(ValueError, match="unknown features"):
        CustomerSchemaResource(log_features=["shoe_size"]).get()
    with pytest.raises(ValueError, match="pinned_transforms"):
        CustomerSchemaResource(pinned_transforms={"total_spend": "cube"}).get()
    with pytest.raises(ValueError, match="unknown features"):
        CustomerSchemaResource(pinned_transforms={"shoe_size": "none"}).get()


@pytest.mark.parametrize("options", [MARGINAL, {}], ids=["marginal", "within_mixture"])
def test_fitted_transform_round_trips_through_json_and_back_to_original_units(options):
    df, _ = generate_customers(1500, seed=3)
    schema = CustomerSchemaResource(**options).get()
    transform = FeatureTransform.fit(df, schema)
    assert set(transform.methods) <= {"boxcox", "yeojohnson", "signed_yeojohnson"}
    assert all(np.isfinite(lam) for lam in transform.lambdas)
    again = FeatureTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    assert again == transform
    z = transform.transform(df)
    assert np.array_equal(np.isnan(z), df[schema.feature_names].isna().to_numpy())
    observed = df[schema.feature_names].to_numpy(dtype=float)
    np.testing.assert_allclose(transform.inverse(z), observed, rtol=1e-9)
    # standardised over the observed values
    np.testing.assert_allclose(np.nanmean(z, axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(z, axis=0), 1.0, rtol=1e-12)


def test_a_transform_written_before_power_transforms_still_loads():
    old = {
        "features": ["a", "b"],
        "log1p": [True, False],
        "center": [1.0, 2.0],
        "scale": [3.0, 4.0],
    }
    transform = FeatureTransform.from_dict(old)
    assert transform.methods == ("log1p", "none") and transform.lambdas == (None, None)
    z = transform.transform(pd.DataFrame({"a": [np.e - 1.0], "b": [6.0]}))
    np.testing.assert_allclose(z, [[0.0, 1.0]])


def test_nightly_job_with_power_transforms_records_lambda_everywhere(tmp_path):
    schema = CustomerSchemaResource(**MARGINAL, pinned_transforms=PINNED)
    result = run_pipeline(tmp_path, resources={"customer_schema": schema})
    assert result.success, failure_messages(result)
    part = tmp_path / "runs" / RUN_DATE
    stored = FeatureTransform.from_dict(json.loads((part / "transform.json").read_text()))
    assert stored.methods[-1] == "none" and stored.lambdas[-1] is None
    assert all(m in ("boxcox", "yeojohnson") for m in stored.methods[:-1])
    bundle = SegmentBundle.load(part / "segment_model.json")
    assert bundle.transform == stored
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = client.get_run(bundle.info["mlflow_run_id"]).data.params
    assert params["transform/days_since_last_order"] == "none"
    assert params["transform/total_spend"].startswith(f"{stored.methods[0]}(λ=")


def test_within_mixture_lambdas_straighten_the_one_time_buyers_and_spare_negative_spend():
    """On the order sample a one-time buyer's visit rate is 30.44 / recency: a line on log-log
    axes, which a thin component fits. The λ estimated within the mixture keeps both near a log
    (|λ| < 0.1); the marginal λ bends the cart size (−0.6: a one-time buyer's whole-number carts
    spread apart). Net spend (refunds make it negative) gets the signed transform, which keeps a
    chargeback the size of a purchase; Yeo-Johnson's negative branch makes it an outlier."""
    df, _ = generate_customers(6000, seed=0, generator="orders")
    schema = CustomerSchemaResource().get()
    within = FeatureTransform.fit(df, schema)
    marginal = FeatureTransform.fit(df, CustomerSchemaResource(**MARGINAL).get())
    lam = dict(zip(within.features, within.lambdas, strict=True))
    method = dict(zip(within.features, within.methods, strict=True))
    assert method["visits_per_month"] == "boxcox" and abs(lam["visits_per_month"]) < 0.1
    assert method["days_since_last_order"] == "signed_yeojohnson"  # recency can be 0 days
    assert abs(lam["days_since_last_order"]) < 0.1
    bent = dict(zip(marginal.features, marginal.lambdas, strict=True))
    assert abs(bent["avg_cart_size"] - lam["avg_cart_size"]) > 0.3
    assert method["total_spend"] == "signed_yeojohnson" and (df["total_spend"] < 0).any()
    spend = within.features.index("total_spend")
    assert np.nanmax(np.abs(within.transform(df)[:, spend])) < 8
    assert np.nanmax(np.abs(marginal.transform(df)[:, spend])) > 12


def test_a_later_value_box_cox_cannot_take_is_raised_to_the_floor_not_an_error():
    df, _ = generate_customers(3000, seed=1, generator="orders")
    transform = FeatureTransform.fit(df, CustomerSchemaResource().get())
    j = transform.features.index("visits_per_month")
    assert transform.methods[j] == "boxcox"
    floor = transform.floors[j]
    assert floor == 0.5 * df["visits_per_month"].min()
    again = FeatureTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    assert again == transform
    later = df.head(4).copy()
    later["visits_per_month"] = [0.0, -2.0, floor, np.nan]
    z = again.transform(later)[:, j]
    assert z[0] == z[1] == z[2] and np.isnan(z[3])
    # the values it was fitted on are untouched by the floor
    np.testing.assert_array_equal(again.transform(df), transform.transform(df))
