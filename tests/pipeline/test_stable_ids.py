"""Stable ids, the registry, the drift report and the SCD2 history on small synthetic inputs."""

import numpy as np
import pandas as pd
import pytest

from em_core import GaussianMixture
from em_pipeline.lib.drift_report import drift_report
from em_pipeline.lib.history import segment_history_sql
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.stable_ids import assign_segment_ids
from em_pipeline.lib.transforms import FeatureTransform
from em_pipeline.lib.warehouse import publish_tables, read_table

SCHEMA = CustomerSchema()
D = len(SCHEMA.feature_names)
# well separated centres in model space; column 0 is the label feature (total_spend)
CENTRES = np.array(
    [
        [-3.0, 0.0, 0.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [3.0, 0.0, 3.0, 0.0],
        [6.0, 0.0, 0.0, 3.0],
        [0.0, -4.0, -4.0, 4.0],
    ]
)
TRANSFORM = FeatureTransform(
    tuple(SCHEMA.feature_names), ("none",) * D, (None,) * D, (0.0,) * D, (1.0,) * D
)


def _fit(centres: list[int], seed: int = 0) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    X = np.vstack([CENTRES[c] + 0.3 * rng.normal(size=(60, D)) for c in centres])
    X = X[rng.permutation(len(X))]
    return GaussianMixture(len(centres), n_init=3, random_state=seed).fit(X)


def _champion(centres: list[int], date: str = "2024-05-01"):
    gm = _fit(centres, seed=1)
    first = assign_segment_ids(gm, None, SCHEMA, date)
    bundle = SegmentBundle.build(
        gm, SCHEMA, TRANSFORM, {"run_date": date}, first.component_to_segment, first.labels
    )
    return bundle, first


def _id_of_centre(gm, mapping, centre: int) -> int:
    comp = int(np.argmin(np.linalg.norm(gm.means_ - CENTRES[centre], axis=1)))
    return mapping[comp]


def test_first_night_numbers_segments_by_spend():
    bundle, first = _champion([2, 0, 1])
    # centres ordered by column 0: 0 (-3), 1 (0), 2 (3)
    for centre, sid in ((0, 0), (1, 1), (2, 2)):
        assert _id_of_centre(bundle.model, bundle.component_to_segment, centre) == sid
    assert list(first.registry["segment_id"]) == [0, 1, 2]
    assert (first.registry["first_seen"] == "2024-05-01").all()
    assert first.registry["retired_at"].isna().all()


def test_refit_in_another_component_order_keeps_the_ids():
    champ, first = _champion([0, 1, 2])
    gm = _fit([2, 1, 0], seed=5)  # components come out in a different order
    a = assign_segment_ids(gm, champ, SCHEMA, "2024-05-02", registry=first.registry)
    for centre in range(3):
        assert _id_of_centre(gm, a.component_to_segment, centre) == _id_of_centre(
            champ.model, champ.component_to_segment, centre
        )
    assert a.new_ids == [] and a.retired_ids == []
    assert (a.alignment["status"] == "retained").all()
    assert (a.alignment["distance"] < 0.1).all()
    assert a.labels == champ.labels
    assert (a.registry["last_seen"] == "2024-05-02").all()
    assert (a.registry["first_seen"] == "2024-05-01").all()


def test_vanished_segment_is_retired_new_ones_get_new_ids_and_ids_are_never_reused():
    champ, first = _champion([0, 1, 2])
    # night 2: centre 1 vanished (K 3 -> 2)
    gm = _fit([0, 2], seed=2)
    a = assign_segment_ids(gm, champ, SCHEMA, "2024-05-02", registry=first.registry)
    assert sorted(a.component_to_segment) == [0, 2]
    assert _id_of_centre(gm, a.component_to_segment, 0) == 0
    assert _id_of_centre(gm, a.component_to_segment, 2) == 2
    assert a.new_ids == [] and a.retired_ids == [1]
    reg = a.registry.set_index("segment_id")
    assert reg.loc[1, "retired_at"] == "2024-05-02" and reg.loc[1, "last_seen"] == "2024-05-01"
    assert reg.loc[[0, 2], "retired_at"].isna().all()
    assert (reg.loc[[0, 2], "last_seen"] == "2024-05-02").all()
    # night 3 from that champion: centre 1 comes back and centre 3 appears (K 2 -> 4): both get
    # fresh ids in spend order; the retired id 1 is not reused
    champ2 = SegmentBundle.build(
        gm, SCHEMA, TRANSFORM, {"run_date": "2024-05-02"}, a.component_to_segment, a.labels
    )
    gm3 = _fit([0, 1, 2, 3], seed=3)
    b = assign_segment_ids(gm3, champ2, SCHEMA, "2024-05-03", registry=a.registry)
    assert [_id_of_centre(gm3, b.component_to_segment, c) for c in range(4)] == [0, 3, 2, 4]
    assert b.new_ids == [3, 4] and b.retired_ids == []
    reg = b.registry.set_index("segment_id")
    assert list(reg.index) == [0, 1, 2, 3, 4]
    assert reg.loc[1, "retired_at"] == "2024-05-02"
    assert (reg.loc[[3, 4], "first_seen"] == "2024-05-03").all()
    assert b.labels[0] == a.labels[0] and b.labels[2] == a.labels[2]
    assert len(set(b.labels.values())) == 4


def test_a_match_beyond_max_match_distance_is_a_new_segment():
    champ, first = _champion([0, 1, 2])
    gm = _fit([0, 1, 4], seed=4)  # centre 2 replaced by a far-away centre 4, same K
    loose = assign_segment_ids(gm, champ, SCHEMA, "2024-05-02", registry=first.registry)
    assert loose.new_ids == []  # the Hungarian assignment pairs everything
    strict = assign_segment_ids(
        gm, champ, SCHEMA, "2024-05-02", registry=first.registry, max_match_distance=1.0
    )
    assert strict.new_ids == [3] and strict.retired_ids == [2]
    assert _id_of_centre(gm, strict.component_to_segment, 4) == 3


def test_drift_report_identical_segmentation_gives_ari_one_and_a_diagonal_matrix():
    rng = np.random.default_rng(0)
    n = 50
    seg = rng.integers(0, 3, size=n)
    p = rng.dirichlet(np.ones(3), size=n)
    df = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "segment": seg})
    for k in range(3):
        df[f"prob_segment_{k}"] = p[:, k]
    snap = pd.DataFrame({"customer_id": df["customer_id"], "x": rng.normal(size=n)})
    alignment = pd.DataFrame(
        {
            "segment_id": [0, 1, 2],
            "status": "retained",
            "label": ["a", "b", "c"],
            "distance": 0.0,
            "nearest_champion_segment": [0, 1, 2],
            "nearest_distance": 0.0,
        }
    )
    r = drift_report(
        run_date="2024-05-02", champion_run_date="2024-05-01", id_column="customer_id",
        features=["x"], after=df.sample(frac=1, random_state=1), alignment=alignment,
        after_snapshot=snap, before=df, before_snapshot=snap,
    )  # fmt: skip
    assert r.summary["ari"] == 1.0 and r.summary["stayed_share"] == 1.0
    m = r.transitions.pivot(index="from_segment", columns="to_segment", values="n_customers")
    np.testing.assert_array_equal(m.to_numpy(), np.diag(np.bincount(seg, minlength=3)))
    e = r.transitions.pivot(index="from_segment", columns="to_segment", values="expected_customers")
    np.testing.assert_allclose(e.to_numpy(), p.T @ p)
    np.testing.assert_allclose(e.to_numpy().sum(axis=1), p.sum(axis=0))
    assert r.features["psi"].iloc[0] == pytest.approx(0.0)
    assert (r.segments["share_change"] == 0).all()


def test_segment_history_closes_and_opens_rows(tmp_path):
    nights = {
        "2024-05-01": {"a": 0, "b": 1, "c": 2},
        "2024-05-02": {"a": 0, "b": 2, "d": 1},  # b moves, c is absent, d is new
        "2024-05-03": {"a": 0, "b": 2, "c": 2, "d": 0},  # c comes back, d moves
    }
    sql = {"segment_history": segment_history_sql()}
    for date, m in nights.items():
        snap = pd.DataFrame({"run_date": date, "customer_id": list(m), "segment": list(m.values())})
        publish_tables(
            tmp_path / "pub", tmp_path / "w.duckdb", date, {},
            {"customer_segments_history": snap}, derived=sql,
        )  # fmt: skip
    # re-publishing the last date changes nothing
    publish_tables(
        tmp_path / "pub", tmp_path / "w.duckdb", "2024-05-03", {},
        {"customer_segments_history": snap}, derived=sql,
    )  # fmt: skip
    h = read_table(tmp_path / "w.duckdb", "segment_history")
    got = [
        (
            r.customer_id,
            r.segment_id,
            str(r.valid_from)[:10],
            None if pd.isna(r.valid_to) else str(r.valid_to)[:10],
            None if pd.isna(r.end_reason) else r.end_reason,
            str(r.run_date)[:10],
        )
        for r in h.itertuples()
    ]
    assert got == [
        ("a", 0, "2024-05-01", None, None, "2024-05-01"),
        ("b", 1, "2024-05-01", "2024-05-02", "moved", "2024-05-02"),
        ("b", 2, "2024-05-02", None, None, "2024-05-02"),
        ("c", 2, "2024-05-01", "2024-05-02", "absent", "2024-05-02"),
        ("c", 2, "2024-05-03", None, None, "2024-05-03"),
        ("d", 1, "2024-05-02", "2024-05-03", "moved", "2024-05-03"),
        ("d", 0, "2024-05-03", None, None, "2024-05-03"),
    ]
    assert list(h["is_current"]) == [True, False, True, False, True, False, True]
    assert len(pd.read_parquet(tmp_path / "pub" / "segment_history.parquet")) == 7
