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


def test_schema_resource_resolves_pinned_then_power_then_log_then_log1p():
    schema = CustomerSchemaResource(power_transform=True, pinned_transforms=PINNED).get()
    assert [f.transform for f in schema.features] == ["auto", "auto", "auto", "none"]
    legacy = CustomerSchemaResource().get()
    assert [f.transform for f in legacy.features] == ["log1p", "log", "log1p", "log1p"]
    plain = CustomerSchemaResource(log_features=[], log1p_features=["total_spend"]).get()
    assert [f.transform for f in plain.features] == ["log1p", "none", "none", "none"]
    with pytest.raises(ValueError, match="unknown features"):
        CustomerSchemaResource(log_features=["shoe_size"]).get()
    with pytest.raises(ValueError, match="pinned_transforms"):
        CustomerSchemaResource(pinned_transforms={"total_spend": "cube"}).get()
    with pytest.raises(ValueError, match="unknown features"):
        CustomerSchemaResource(pinned_transforms={"shoe_size": "none"}).get()


def test_fitted_transform_round_trips_through_json_and_back_to_original_units():
    df, _ = generate_customers(1500, seed=3)
    schema = CustomerSchemaResource(power_transform=True).get()
    transform = FeatureTransform.fit(df, schema)
    assert set(transform.methods) <= {"boxcox", "yeojohnson"}
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
    schema = CustomerSchemaResource(power_transform=True, pinned_transforms=PINNED)
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
