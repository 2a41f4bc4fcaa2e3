"""A simulated sequence of nights through the real pipeline (Dagster + MLflow + DuckDB).

1. 2024-05-01  base population (four latent segments): first champion, ids by spend
2. 2024-05-02  same customers shuffled, 30 new, 20 gone
3. 2024-05-03  plus 60 customers of a genuinely new fifth latent segment
4. 2024-05-03  identical re-run of night 3 (unchanged population: warm start, ARI = 1)
5. 2024-05-04  corrupted drop (total_spend exported in cents): must not be promoted
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_pipeline.lib.sample_data import write_sample_drop
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.warehouse import read_table

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

# 800 customers: with 400 the night-3 BIC cannot afford a fifth component for 60 customers
N = 800
SEED = 7
CONFIG = {
    "ops": {
        "segment_model": {
            "config": {
                "k_min": 1,
                "k_max": 6,
                "covariance_types": ["full"],
                "n_init": 2,
                "max_iter": 200,
            }
        }
    }
}
NIGHTS = [
    ("n1", "2024-05-01", {}),
    ("n2", "2024-05-02", {"shuffle_seed": 2, "n_new": 30, "n_leaving": 20, "night": 2}),
    (
        "n3",
        "2024-05-03",
        {"shuffle_seed": 3, "n_new": 20, "n_leaving": 10, "n_new_segment": 60, "night": 3},
    ),
    ("n3_rerun", "2024-05-03", None),  # same drop again
    (
        "n4_corrupt",
        "2024-05-04",
        {
            "shuffle_seed": 4,
            "n_new": 20,
            "n_leaving": 10,
            "n_new_segment": 60,
            "night": 3,
            "corrupt": "spend_in_cents",
        },
    ),
]
PUBLISHED = [
    "customer_segments",
    "segment_profiles",
    "segment_registry",
    "segment_champion",
    "segment_history",
    "segment_runs",
    "drift_runs",
    "drift_transitions",
    "drift_segments",
    "customer_segments_history",
]


def _tracking(home):
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return mlflow.MlflowClient(uri, registry_uri=uri)


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    import os

    os.environ.pop("EM_SEGMENTS_DROP_DIR", None)
    home = tmp_path_factory.mktemp("nightly")
    drops = home / "drops"
    out = {"home": home}
    truth = {}
    for name, date, kw in NIGHTS:
        if kw is not None:
            truth[date] = write_sample_drop(drops / date, n_customers=N, seed=SEED, **kw)
        result = run_pipeline(home, date, drop_dir=str(drops / "{run_date}"), run_config=CONFIG)
        part = home / "runs" / date
        out[name] = {
            "date": date,
            "result": result,
            "truth": truth[date],
            "checks": {c.check_name: c for c in result.get_asset_check_evaluations()},
            "tables": {t: read_table(home / "warehouse.duckdb", t) for t in PUBLISHED},
            "bundle": SegmentBundle.load(part / "segment_model.json"),
            "selection": pd.read_parquet(part / "selection.parquet"),
            "alignment": pd.read_parquet(part / "segment_alignment.parquet"),
            "segments": pd.read_parquet(part / "customer_segments.parquet"),
            "drift_transitions": pd.read_parquet(part / "drift_transitions.parquet"),
            "drift_segments": pd.read_parquet(part / "drift_segments.parquet"),
            "drift_summary": pd.read_json(part / "drift_summary.json", typ="series"),
            "published_files": {
                p.relative_to(home / "published"): p.read_bytes()
                for p in (home / "published").rglob("*.parquet")
            },
        }
        if name != "n4_corrupt":
            assert result.success, (name, failure_messages(result))
    return out


def _latent_to_id(night) -> dict[int, int]:
    """Majority published segment id of each latent segment."""
    seg = night["segments"]
    latent = seg["customer_id"].map(night["truth"].true_segment)
    ct = pd.crosstab(latent, seg["segment"])
    # every latent segment must be captured cleanly by one id
    assert (ct.max(axis=1) / ct.sum(axis=1)).min() > 0.9, ct
    return {int(z): int(ct.loc[z].idxmax()) for z in ct.index}


def test_same_latent_segment_keeps_its_id_and_the_new_segment_gets_a_new_one(nights):
    n1, n2, n3 = (_latent_to_id(nights[k]) for k in ("n1", "n2", "n3"))
    assert set(n1) == {0, 1, 2, 3} and len(set(n1.values())) == 4
    # first night: ids by ascending spend (bargain hunters 0 ... high-value loyal 3)
    assert n1 == {0: 0, 3: 1, 1: 2, 2: 3}
    assert n2 == n1
    assert {z: n3[z] for z in n1} == n1
    # the new latent segment (4) got a new id, never used before
    assert n3[4] not in n1.values() and n3[4] == 4
    align = nights["n3"]["alignment"].set_index("segment_id")
    assert align.loc[4, "status"] == "new"
    assert set(align.index[align["status"] == "retained"]) == set(n1.values())
    # the published tables (what BI reads) carry the same ids
    published = nights["n3"]["tables"]["customer_segments"]
    assert set(published["segment"]) == {0, 1, 2, 3, 4}
    reg = nights["n3"]["tables"]["segment_registry"].set_index("segment_id")
    assert list(reg.index) == [0, 1, 2, 3, 4]
    assert str(reg.loc[4, "first_seen"])[:10] == "2024-05-03"
    assert (reg.loc[[0, 1, 2, 3], "first_seen"].astype(str).str[:10] == "2024-05-01").all()
    assert (reg["last_seen"].astype(str).str[:10] == "2024-05-03").all()
    assert reg["retired_at"].isna().all()
    # labels stay with their ids; the new label is unique
    labels1 = nights["n1"]["bundle"].labels
    labels3 = nights["n3"]["bundle"].labels
    assert {k: labels3[k] for k in labels1} == labels1
    assert len(set(labels3.values())) == 5


def test_corrupted_night_is_logged_but_not_promoted_and_leaves_yesterdays_tables(nights):
    bad, good = nights["n4_corrupt"], nights["n3_rerun"]
    assert not bad["result"].success
    checks = bad["checks"]
    assert not checks["drift_psi_below_max"].passed
    assert not checks["drift_distance_below_max"].passed
    assert "total_spend" in checks["drift_psi_below_max"].metadata["reason"].value
    # the upstream checks passed: only the drift gates stopped it
    assert checks["raw_schema"].passed and checks["min_segment_share"].passed
    assert bad["result"].asset_materializations_for_node("published_segments") == []
    # BI still reads exactly the last good night
    assert bad["published_files"] == good["published_files"]
    for t in PUBLISHED:
        pd.testing.assert_frame_equal(bad["tables"][t], good["tables"][t])
    champ = bad["tables"]["segment_champion"]
    assert str(champ["run_date"].iloc[0])[:10] == "2024-05-03"
    # the model was logged (and registered) but the alias did not move
    client = _tracking(nights["home"])
    alias = client.get_model_version_by_alias("customer-segments", "champion")
    assert str(alias.version) == champ["model_version"].iloc[0]
    assert str(alias.version) == good["bundle"].info["model_version"]
    run = client.get_run(bad["bundle"].info["mlflow_run_id"])
    assert run.data.tags["promoted"] == "false"
    assert run.data.tags["check/drift_psi_below_max"].startswith("failed: PSI of total_spend")
    assert run.data.tags["check/drift_ari_above_min"] == "passed"
    assert run.data.metrics["drift_max_psi"] > 1.0
    version = bad["bundle"].info["model_version"]
    assert int(version) > int(alias.version)
    assert client.get_run(good["bundle"].info["mlflow_run_id"]).data.tags["promoted"] == "true"


def test_warm_start_reaches_at_least_the_cold_likelihood_and_is_recorded(nights):
    from em_core import select_model
    from em_core.dequantize import Lattice
    from em_pipeline.lib.dequantised import dequantised_features

    rerun = nights["n3_rerun"]
    sel = rerun["selection"]
    warm = sel[sel["warm_start"]]
    assert len(warm) == 1 and bool(warm["chosen"].iloc[0])
    assert warm["best_init"].iloc[0] == "warm"
    k, cov = int(warm["n_components"].iloc[0]), warm["covariance_type"].iloc[0]
    # cold start: the same candidate, same seed and data, without the champion's parameters
    bundle = rerun["bundle"]
    snap = pd.read_parquet(nights["home"] / "runs" / rerun["date"] / "raw_customers.parquet")
    # the values the sweep fitted: dequantised with the night's lattices, seeded by id
    lattices = {f: Lattice.from_dict(d) for f, d in bundle.info["dequantized"].items()}
    X = dequantised_features(snap, bundle.schema, bundle.transform, lattices, seed=0)
    cfg = CONFIG["ops"]["segment_model"]["config"]
    cold = select_model(
        X,
        [k],
        [cov],
        n_init=cfg["n_init"],
        random_state=0,
        max_iter=cfg["max_iter"],
        tol=1e-6,
        prior="default",
    )
    ll_warm = float(warm["log_likelihood"].iloc[0])
    ll_cold = float(cold.table[0]["log_likelihood"])
    assert ll_warm >= ll_cold - 1e-6 * abs(ll_cold)
    assert int(warm["n_iter"].iloc[0]) <= int(cold.table[0]["n_iter"])
    # recorded: bundle, published run table, MLflow parent and child run
    assert bundle.info["best_init"] == "warm" and bundle.info["warm_start"] is True
    runs = rerun["tables"]["segment_runs"]
    row = runs[runs["run_date"].astype(str).str[:10] == "2024-05-03"].iloc[0]
    assert row["best_init"] == "warm" and bool(row["warm_start"])
    client = _tracking(nights["home"])
    parent = client.get_run(bundle.info["mlflow_run_id"])
    assert parent.data.tags["chosen_best_init"] == "warm"
    assert parent.data.metrics["warm_start_won"] == 1.0
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    tags = {c.data.params["n_components"]: c.data.tags for c in children}
    assert tags[str(k)]["warm_start"] == "true" and tags[str(k)]["best_init"] == "warm"
    # the first night had no champion: no warm start anywhere
    assert not nights["n1"]["selection"]["warm_start"].any()


def test_transition_matrices_sum_correctly_and_ari_is_one_on_an_identical_rerun(nights):
    for name in ("n2", "n3", "n3_rerun"):
        night = nights[name]
        tr, s = night["drift_transitions"], night["drift_summary"]
        n_common = int(s["n_common_customers"])
        assert n_common > 0 and tr["n_customers"].sum() == n_common
        assert tr["expected_customers"].sum() == pytest.approx(n_common)
        # rows: the champion's segment sizes on the common customers
        before = nights[{"n2": "n1", "n3": "n2", "n3_rerun": "n3"}[name]]["segments"]
        after = night["segments"]
        common = before.merge(after, on="customer_id", suffixes=("_b", "_a"))
        assert len(common) == n_common
        rows = tr.groupby("from_segment")["n_customers"].sum()
        pd.testing.assert_series_equal(
            rows, common["segment_b"].value_counts().reindex(rows.index, fill_value=0),
            check_names=False,
        )  # fmt: skip
        cols = tr.groupby("to_segment")["n_customers"].sum()
        pd.testing.assert_series_equal(
            cols, common["segment_a"].value_counts().reindex(cols.index, fill_value=0),
            check_names=False,
        )  # fmt: skip
        # the expected matrix's rows are the champion's posterior mass of each segment
        prob = common[[f"prob_segment_{i}_b" for i in rows.index]].sum().to_numpy()
        exp_rows = tr.groupby("from_segment")["expected_customers"].sum().to_numpy()
        np.testing.assert_allclose(exp_rows, prob, rtol=1e-9)
        assert s["n_new_customers"] == len(set(after["customer_id"]) - set(before["customer_id"]))
    rerun = nights["n3_rerun"]
    assert rerun["drift_summary"]["ari"] == pytest.approx(1.0, abs=1e-12)
    tr = rerun["drift_transitions"]
    assert tr.loc[tr["from_segment"] != tr["to_segment"], "n_customers"].sum() == 0
    assert rerun["drift_summary"]["max_psi"] == pytest.approx(0.0, abs=1e-12)
    # the report is published with the promoted run and logged to MLflow
    drift_runs = rerun["tables"]["drift_runs"]
    assert set(drift_runs["run_date"].astype(str).str[:10]) == {
        "2024-05-01",
        "2024-05-02",
        "2024-05-03",
    }
    client = _tracking(nights["home"])
    run_id = rerun["bundle"].info["mlflow_run_id"]
    assert client.get_run(run_id).data.metrics["drift_ari"] == pytest.approx(1.0)
    arts = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert "drift/drift_transitions.csv" in arts and "drift/drift_features.csv" in arts
    # the new-segment night: the new segment's share counts from 0, nothing retired
    seg3 = nights["n3"]["drift_segments"].set_index("segment_id")
    assert seg3.loc[4, "status"] == "new" and seg3.loc[4, "share_before"] == 0
    assert seg3.loc[4, "share_after"] == pytest.approx(
        (nights["n3"]["segments"]["segment"] == 4).mean()
    )
    assert (seg3.loc[[0, 1, 2, 3], "distance"] < 0.1).all()


def test_history_rows_close_and_open_when_customers_move_or_leave(nights):
    tables = nights["n3_rerun"]["tables"]
    hist, snaps = tables["segment_history"], tables["customer_segments_history"]
    dates = sorted(snaps["run_date"].astype(str).str[:10].unique())
    assert dates == ["2024-05-01", "2024-05-02", "2024-05-03"]
    h = hist.assign(
        valid_from=hist["valid_from"].astype(str).str[:10],
        valid_to=hist["valid_to"].map(lambda v: None if pd.isna(v) else str(v)[:10]),
    )
    # every published (customer, run date) lies in exactly one row, with that segment
    for r in snaps.assign(run_date=snaps["run_date"].astype(str).str[:10]).itertuples():
        rows = h[
            (h["customer_id"] == r.customer_id)
            & (h["valid_from"] <= r.run_date)
            & (h["valid_to"].isna() | (h["valid_to"] > r.run_date))
        ]
        assert len(rows) == 1 and rows["segment_id"].iloc[0] == r.segment, r
    # the open rows are exactly tonight's published segments
    current = h[h["valid_to"].isna()]
    assert current["is_current"].all() and current["customer_id"].is_unique
    published = tables["customer_segments"].set_index("customer_id")["segment"]
    assert (
        current.set_index("customer_id")["segment_id"]
        .sort_index()
        .equals(published.sort_index().rename("segment_id"))
    )
    # customers gone on night 2 were closed as absent on that date
    ids1, ids2 = (set(nights[k]["segments"]["customer_id"]) for k in ("n1", "n2"))
    gone = ids1 - ids2
    assert len(gone) == 20
    closed = h[h["customer_id"].isin(gone) & (h["valid_from"] == "2024-05-01")]
    assert (closed["valid_to"] == "2024-05-02").all() and (closed["end_reason"] == "absent").all()
    # a customer who changed segment: the old row closes ("moved") the day the new one opens
    moved = h[h["end_reason"] == "moved"]
    assert len(moved) > 0
    for r in moved.itertuples():
        nxt = h[(h["customer_id"] == r.customer_id) & (h["valid_from"] == r.valid_to)]
        assert len(nxt) == 1 and nxt["segment_id"].iloc[0] != r.segment_id
        assert str(r.run_date)[:10] == r.valid_to
