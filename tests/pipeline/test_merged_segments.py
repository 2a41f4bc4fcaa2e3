"""segment_model with segments='merged': components merged into segments by DEMP, published as
segments, ids kept across nights by mutual majority of customers, the merge path in MLflow."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_pipeline.defs.resources import SampleCustomerSource
from em_pipeline.lib.segments import SegmentBundle

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

MERGED = {
    "ops": {
        "segment_model": {
            "config": {"k_min": 1, "k_max": 7, "n_init": 2, "max_iter": 300, "segments": "merged"}
        }
    }
}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """5,000 sample customers (BIC fits their 4 segments with 4-5 components): a night, the same
    night re-run, and the next night."""
    home = tmp_path_factory.mktemp("merged")
    source = SampleCustomerSource(root=str(home / "drops"), n_customers=5000, seed=0)
    out = {}
    for key, night in (("first", "2024-05-01"), ("rerun", "2024-05-01"), ("next", "2024-05-02")):
        result = run_pipeline(home, night, run_config=MERGED, resources={"source": source})
        assert result.success, failure_messages(result)
        part = home / "runs" / night
        out[key] = {
            "bundle": SegmentBundle.load(part / "segment_model.json"),
            "scored": pd.read_parquet(part / "customer_segments.parquet"),
            "profiles": pd.read_parquet(part / "segment_profiles.parquet"),
            "alignment": pd.read_parquet(part / "segment_alignment.parquet"),
            "drift": json.loads((part / "drift_summary.json").read_text()),
            "components": pd.read_parquet(part / "component_profiles.parquet"),
        }
    out["home"] = home
    return out


def test_components_are_merged_and_published_as_segments(nights):
    bundles = [nights[k]["bundle"] for k in ("first", "rerun", "next")]
    assert any(b.n_segments < b.model.n_components for b in bundles)  # something was merged
    for key in ("first", "rerun", "next"):
        bundle, scored = nights[key]["bundle"], nights[key]["scored"]
        probs = scored[[f"prob_segment_{s}" for s in bundle.segment_ids]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert set(scored["segment"]) == set(bundle.segment_ids)  # no empty segment
        assert sorted(nights[key]["profiles"]["segment"]) == bundle.segment_ids
        components = nights[key]["components"]
        assert components["segment"].tolist() == bundle.component_to_segment
        assert components["size"].sum() == len(scored)
        assert (components["size"].to_numpy() == np.bincount(
            scored["component"], minlength=bundle.model.n_components
        )).all()  # fmt: skip


def test_an_identical_rerun_keeps_every_segment_id(nights):
    first, rerun = nights["first"], nights["rerun"]
    assert set(rerun["alignment"]["status"]) == {"retained"}
    assert rerun["bundle"].segment_ids == first["bundle"].segment_ids
    assert rerun["drift"]["ari"] == pytest.approx(1.0)


def test_the_next_night_keeps_ids_where_customers_stay_and_never_reuses_one(nights):
    before, after = nights["rerun"]["bundle"], nights["next"]["alignment"]
    retained = after.loc[after["status"] == "retained", "segment_id"]
    new = after.loc[after["status"] == "new", "segment_id"]
    assert set(retained) <= set(before.segment_ids)
    assert all(sid > max(before.segment_ids) for sid in new)
    assert len(retained) >= 1 and nights["next"]["drift"]["ari"] > 0.6


def test_the_merge_path_goes_to_mlflow(nights):
    client = mlflow.MlflowClient(f"sqlite:///{nights['home'] / 'mlflow.db'}")
    run_id = nights["next"]["bundle"].info["mlflow_run_id"]
    names = {
        a.path for folder in ("segments", "plots") for a in client.list_artifacts(run_id, folder)
    }
    assert "plots/merge_path.png" in names and "segments/merge_path.csv" in names
