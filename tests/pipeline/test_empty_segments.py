"""A real customer base — tie-heavy order data of a single-cohort store, half one-time buyers — at
three sizes, with the nightly CLI's model-selection defaults: the night publishes, and no segment
is the most probable one for no customer. On the complete 5,000-customer drop the sweep's best BIC
was a K = 8 fit with a component of 0.92 expected customers, which the pipeline published as a
one-customer segment and the min-share gate stopped the night."""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_pipeline.lib.segments import SegmentBundle
from tests.core.order_data import STORE_COLUMNS, store_customers

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

# the nightly CLI's defaults (K = 1..8 x four covariance types, 3 restarts), not the fast sweep
CLI_DEFAULTS = {"ops": {"segment_model": {"config": {}}, "imputed_customers": {"config": {}}}}


def write_store_drop(folder: Path, n: int, seed: int, missing_rate: float = 0.10) -> None:
    columns, _ = store_customers(n, seed)
    values = np.column_stack([columns[c] for c in STORE_COLUMNS])
    rng = np.random.default_rng(seed + 1)
    missing = rng.random(values.shape) < missing_rate
    missing[missing.all(axis=1), 0] = False
    values[missing] = np.nan
    drop = pd.DataFrame(values, columns=list(STORE_COLUMNS))
    drop.insert(0, "customer_id", [f"S{seed}-{i:06d}" for i in range(n)])
    drop = drop.round(6)  # what an export writes; the features then equal make_store_data's
    folder.mkdir(parents=True)
    drop.to_csv(folder / "orders.csv", index=False)


@pytest.mark.parametrize(
    ("n", "seed", "missing_rate"), [(2_000, 0, 0.10), (5_000, 1, 0.0), (24_000, 0, 0.0)]
)
def test_the_nightly_job_publishes_no_empty_segment_on_store_data(tmp_path, n, seed, missing_rate):
    run_date = "2024-05-01"
    write_store_drop(tmp_path / "drop", n, seed, missing_rate)
    result = run_pipeline(
        tmp_path / "home", run_date, drop_dir=str(tmp_path / "drop"), run_config=CLI_DEFAULTS
    )
    assert result.success, failure_messages(result)

    part = tmp_path / "home" / "runs" / run_date
    bundle = SegmentBundle.load(part / "segment_model.json")
    model = bundle.model
    assert model.weights_.min() * n >= 1.0  # no component below one expected customer

    scored = pd.read_parquet(part / "customer_segments.parquet")
    assert len(scored) == n
    sizes = scored["segment"].value_counts().reindex(bundle.segment_ids, fill_value=0)
    assert sizes.min() >= 1, f"a published segment without customers: {sizes.to_dict()}"

    selection = pd.read_parquet(part / "selection.parquet")
    chosen = selection[selection["chosen"]].iloc[0]
    # smallest_class counts the fit's (dequantised) values, the published sizes the recorded
    assert chosen["eligible"] and chosen["smallest_class"] >= 1
    assert not selection.loc[~selection["eligible"], "chosen"].any()

    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as con:
        published = con.sql("SELECT segment, size FROM segment_profiles").df()
    assert sorted(published["segment"]) == bundle.segment_ids
    assert published["size"].min() >= 1


def test_a_gate_that_stops_the_night_is_named_with_the_segment_and_its_share(
    tmp_path, monkeypatch, capsys
):
    from em_pipeline.__main__ import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("EM_SEGMENTS_HOME", str(tmp_path / "home"))
    config = tmp_path / "run_config.json"
    config.write_text(
        '{"ops": {"segment_profiles_min_segment_share": {"config": {"min_share": 0.9}}}}'
    )
    args = ["--home", str(tmp_path / "home"), "--run-date", "2024-05-01", "--k-max", "3"]
    assert main([*args, "--n-init", "1", "--run-config", str(config)]) == 5  # not published
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("  check min_segment_share"))
    assert "check min_segment_share on segment_profiles failed: segment " in line
    assert "% of the customers (" in line and "< min_share 90.00%" in line
    assert "{" not in line  # a sentence, not a metadata dump
