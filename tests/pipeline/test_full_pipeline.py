"""One real in-process materialisation on sample data (see conftest.full_run)."""

import json

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import N_CUSTOMERS, RUN_DATE, load_defs
from sklearn.metrics import adjusted_rand_score

from em_core import power
from em_pipeline.defs.resources import SampleCustomerSource
from em_pipeline.lib.mlflow_logging import mlflow_uris
from em_pipeline.lib.segments import SegmentBundle

FEATURES = ["total_spend", "visits_per_month", "avg_cart_size", "days_since_last_order"]


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    source = SampleCustomerSource(
        root=str(tmp_path_factory.mktemp("truth")),
        n_customers=N_CUSTOMERS,
        seed=7,
        generator="lognormal",
    )
    return source.write(RUN_DATE)


def _part(home):
    return home / "runs" / RUN_DATE


def _mlflow(home):
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    exp = client.get_experiment_by_name("em-segments")
    return client, exp


def test_every_good_customer_scored_once_and_every_bad_row_quarantined(full_run, truth):
    home, _ = full_run
    seg = pd.read_parquet(_part(home) / "customer_segments.parquet")
    assert seg["customer_id"].is_unique
    assert sorted(seg["customer_id"]) == sorted(truth.good_ids)
    q = pd.read_parquet(_part(home) / "quarantine.parquet")
    assert len(q) == truth.n_bad_rows
    assert set(q["customer_id"].dropna()) | {""} == set(truth.bad_ids)
    for cid, reason in truth.bad_ids.items():
        rows = q[q["customer_id"].isna()] if cid == "" else q[q["customer_id"] == cid]
        assert len(rows) >= 1 and all(reason in r for r in rows["reason"]), (
            cid,
            list(rows["reason"]),
        )
    # nothing lost: good + quarantined = every input row
    assert len(seg) + len(q) == len(truth.good_ids) + truth.n_bad_rows


def test_segment_table_probabilities_and_labels(full_run, truth):
    home, _ = full_run
    seg = pd.read_parquet(_part(home) / "customer_segments.parquet")
    bundle = SegmentBundle.load(_part(home) / "segment_model.json")
    k = bundle.n_segments
    probs = seg[[f"prob_segment_{i}" for i in range(k)]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(seg["confidence"], probs.max(axis=1))
    assert (seg["segment"] == probs.argmax(axis=1)).all()
    assert (seg["run_date"] == RUN_DATE).all()
    assert seg["segment_label"].nunique() == k
    # segment ids are ordered by the model's mean spend
    j = FEATURES.index("total_spend")
    spend_by_segment = [
        bundle.model.means_[bundle.component_to_segment.index(s), j] for s in range(k)
    ]
    assert spend_by_segment == sorted(spend_by_segment)
    # the sample has four well separated latent segments: the fit must find them
    true = seg["customer_id"].map(truth.true_segment)
    assert adjusted_rand_score(true, seg["segment"]) > 0.7


def test_profiles_in_original_units(full_run):
    home, _ = full_run
    prof = pd.read_parquet(_part(home) / "segment_profiles.parquet")
    snap = pd.read_parquet(_part(home) / "raw_customers.parquet")
    seg = pd.read_parquet(_part(home) / "customer_segments.parquet")
    assert prof["size"].sum() == len(snap)
    assert prof["share"].sum() == pytest.approx(1.0)
    merged = snap.merge(seg[["customer_id", "segment"]], on="customer_id")
    for row in prof.itertuples():
        part = merged[merged["segment"] == row.segment]
        assert row.size == len(part)
        assert row.mean_total_spend == pytest.approx(part["total_spend"].mean())
    # original units (EUR), not standardised: a z-score mean would be near 0
    assert prof["mean_total_spend"].max() > 100


def test_features_and_imputation(full_run):
    home, _ = full_run
    snap = pd.read_parquet(_part(home) / "raw_customers.parquet")
    feats = pd.read_parquet(_part(home) / "customer_features.parquet")
    imp = pd.read_parquet(_part(home) / "imputed_customers.parquet")
    missing = snap[FEATURES].isna().to_numpy()
    assert 0.05 < missing.mean() < 0.20
    assert (feats[FEATURES].isna().to_numpy() == missing).all()
    z = feats[FEATURES]
    np.testing.assert_allclose(z.mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(ddof=0), 1.0, atol=1e-9)
    # the recorded transform (a power transform, λ within a mixture) then standardise
    stored = json.loads((_part(home) / "transform.json").read_text())
    j = stored["features"].index("total_spend")
    assert stored["methods"][j] in ("boxcox", "signed_yeojohnson")
    spend = pd.Series(
        power.forward(snap["total_spend"], stored["methods"][j], stored["lambdas"][j])
    )
    np.testing.assert_allclose(z["total_spend"], (spend - spend.mean()) / spend.std(ddof=0))
    assert not imp[FEATURES].isna().any().any()
    flags = imp[[f"{f}_imputed" for f in FEATURES]].to_numpy()
    assert (flags == missing).all()
    obs = snap[FEATURES].to_numpy()
    np.testing.assert_allclose(imp[FEATURES].to_numpy()[~missing], obs[~missing], rtol=1e-9)
    assert (imp[FEATURES].to_numpy()[missing] >= 0).all()


def test_dagster_metadata(full_run):
    home, result = full_run
    mats = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("raw_customers")
        + result.asset_materializations_for_node("segment_model")
        + result.asset_materializations_for_node("imputed_customers")
    }
    raw = mats["raw_customers"]
    assert raw["n_quarantined"].value == len(pd.read_parquet(_part(home) / "quarantine.parquet"))
    assert raw["quarantine/duplicate_id"].value == 2
    assert raw["quarantine/unknown_columns"].value == 5
    model = mats["segment_model"]
    assert model["mlflow_run_url"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    selection = pd.read_parquet(_part(home) / "selection.parquet")
    assert model["n_candidates"].value == len(selection) == 16  # K = 1..4 x four types
    assert "missing_rate/total_spend" in mats["imputed_customers"]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert len(checks) == 9 and all(checks.values())


def test_mlflow_parent_run_with_one_child_per_candidate_holding_the_curves(full_run):
    home, result = full_run
    client, exp = _mlflow(home)
    parents = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.em_run_kind = 'selection' and tags.partition = '{RUN_DATE}'",
    )
    assert len(parents) == 1
    parent = parents[0]
    tags = parent.data.tags
    assert tags["dagster_run_id"] == result.run_id
    assert tags["em_core_version"]
    # every asset of the run, from the definitions (not a hand-kept list)
    keys = sorted(k.to_user_string() for a in load_defs().assets for k in a.keys)
    assert tags["dagster_asset_keys"] == ",".join(keys)
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    keys = {(c.data.params["n_components"], c.data.params["covariance_type"]) for c in children}
    assert len(children) == 16 and len(keys) == 16
    fitted = [c for c in children if c.data.tags.get("degenerate") == "false"]
    assert len(fitted) >= 12
    for child in fitted:
        p = child.data.params
        assert {"tol", "max_iter", "reg_covar", "n_init", "seed"} <= set(p)
        for key in ("log_likelihood", "bic", "aic", "icl", "n_iter", "converged"):
            assert np.isfinite(child.data.metrics[key])
        for restart in range(2):  # n_init=2: both restart curves are logged
            hist = client.get_metric_history(child.info.run_id, f"loglik_restart_{restart}")
            steps = [m.step for m in hist]
            assert steps == list(range(len(hist))) and len(hist) >= 2
            values = [m.value for m in sorted(hist, key=lambda m: m.step)]
            assert values[-1] >= values[0] - 1e-6  # EM never lowers the likelihood
        # the run's description links MLflow's metric page with every restart in one chart
        assert_restart_chart_link(child, exp.experiment_id)
    chosen = [c for c in children if c.data.tags["chosen"] == "true"]
    assert len(chosen) == 1
    # lineage: the input snapshot as a dataset with a digest
    inputs = parent.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest == tags["data_digest"]
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {
        "plots/bic_vs_k.png",
        "plots/loglik_chosen_restarts.png",
        "plots/loglik_all_candidates.png",
        "plots/segment_profiles.png",
    } <= arts
    assert client.list_artifacts(parent.info.run_id, "selection")[0].path.endswith(".csv")
    assert client.list_artifacts(parent.info.run_id, "model_json")[0].path.endswith(".json")


def test_registered_model_loads_by_alias_and_scores(full_run):
    home, _ = full_run
    with mlflow_uris(f"sqlite:///{home / 'mlflow.db'}"):
        model = mlflow.pyfunc.load_model("models:/customer-segments@champion")
    seg = pd.read_parquet(_part(home) / "customer_segments.parquet")
    snap = pd.read_parquet(_part(home) / "raw_customers.parquet").head(25)
    out = model.predict(snap[FEATURES])
    expected = seg.set_index("customer_id").loc[snap["customer_id"]]
    assert (out["segment"].to_numpy() == expected["segment"].to_numpy()).all()
    np.testing.assert_allclose(out["confidence"], expected["confidence"], rtol=1e-9)
    # brand-new customers, one at a time, with missing cells, score too
    new = pd.DataFrame(
        {
            "total_spend": [5000.0, np.nan],
            "visits_per_month": [10.0, 0.3],
            "avg_cart_size": [np.nan, 3.0],
            "days_since_last_order": [3.0, 250.0],
        }
    )
    for i in range(len(new)):
        scored = model.predict(new.iloc[[i]])
        assert np.isclose(scored.filter(like="prob_segment_").sum(axis=1).iloc[0], 1.0)
    both = model.predict(new)
    # a big spender lands in the top-spend segment
    assert both["segment"].iloc[0] == seg["segment"].max()


def test_duckdb_tables_readable_from_a_fresh_connection(full_run):
    home, _ = full_run
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        assert {
            "customer_segments",
            "segment_profiles",
            "customer_segments_history",
            "segment_profiles_history",
            "segment_runs",
        } <= tables
        seg = con.execute("SELECT * FROM customer_segments ORDER BY customer_id").df()
        n_hist = con.execute(
            "SELECT count(*) FROM customer_segments_history WHERE run_date = DATE '2024-05-01'"
        ).fetchone()[0]
        runs = con.execute("SELECT * FROM segment_runs").df()
    finally:
        con.close()
    local = pd.read_parquet(_part(home) / "customer_segments.parquet").sort_values("customer_id")
    assert seg["customer_id"].tolist() == local["customer_id"].tolist()
    assert (seg["segment"].to_numpy() == local["segment"].to_numpy()).all()
    assert n_hist == len(local)
    assert RUN_DATE in {str(d)[:10] for d in runs["run_date"]}
    published = pd.read_parquet(home / "published" / "customer_segments.parquet")
    assert len(published) == len(local)


def assert_restart_chart_link(run, experiment_id: str) -> None:
    """The note's link opens the UI's metric page on this run with all its restart curves."""
    import json
    import re
    from urllib.parse import parse_qsl, urlsplit

    link = re.search(r"\[open\]\((\S+)\)", run.data.tags["mlflow.note.content"]).group(1)
    route, _, query = urlsplit(link).fragment.partition("?")
    assert link.startswith("http://127.0.0.1:5000/#/metric?") and route == "/metric"
    args = dict(parse_qsl(query))
    n = int(run.data.tags["n_restart_curves"])
    restarts = [f"loglik_restart_{i}" for i in range(n)]
    assert json.loads(args["runs"]) == [run.info.run_id]
    assert json.loads(args["experiments"]) == [experiment_id]
    assert json.loads(args["plot_metric_keys"]) == restarts and set(restarts) <= set(
        run.data.metrics
    )
    assert (args["x_axis"], args["y_axis_scale"]) == ("step", "linear")
