"""``python -m em_pipeline score``: new customers scored by the champion pyfunc, no refit."""

import numpy as np
import pandas as pd
from pipeline_helpers import RUN_DATE

from em_pipeline.__main__ import main

FEATURES = ["total_spend", "visits_per_month", "avg_cart_size", "days_since_last_order"]


def test_score_command_uses_the_champion_and_matches_the_published_segments(full_run, tmp_path):
    home, _ = full_run
    runs_before = sorted(p.name for p in (home / "runs").iterdir())
    snap = pd.read_parquet(home / "runs" / RUN_DATE / "raw_customers.parquet").head(30)
    rows = snap[["customer_id", *FEATURES]].astype(object)
    bad = pd.DataFrame(
        [{"customer_id": "NEW-bad", "total_spend": "lots", "visits_per_month": 1,
          "avg_cart_size": 1, "days_since_last_order": 3}]
    )  # fmt: skip
    new = pd.DataFrame(
        [{"customer_id": "NEW-1", "total_spend": 4000.0, "visits_per_month": 9.0,
          "avg_cart_size": np.nan, "days_since_last_order": 4.0}]
    )  # fmt: skip
    src = tmp_path / "changed_customers.csv"
    pd.concat([rows, new, bad], ignore_index=True).assign(note="x").to_csv(src, index=False)
    out = tmp_path / "scored.parquet"
    assert main(["score", "--home", str(home), "--input", str(src), "--output", str(out)]) == 0
    scored = pd.read_parquet(out).set_index("customer_id")
    assert len(scored) == 31 and "NEW-bad" not in scored.index
    published = pd.read_parquet(home / "published" / "customer_segments.parquet")
    published = published.set_index("customer_id").loc[snap["customer_id"]]
    got = scored.loc[snap["customer_id"]]
    assert (got["segment"].to_numpy() == published["segment"].to_numpy()).all()
    np.testing.assert_allclose(got["confidence"], published["confidence"], rtol=1e-6)
    assert scored.loc["NEW-1", "segment"] == published["segment"].max()
    assert (scored["model_uri"] == "models:/customer-segments@champion").all()
    champion = pd.read_parquet(home / "published" / "segment_champion.parquet")
    assert (scored["model_version"] == champion["model_version"].iloc[0]).all()
    rejected = pd.read_parquet(tmp_path / "scored.rejected.parquet")
    assert list(rejected["customer_id"]) == ["NEW-bad"]
    assert rejected["reason"].iloc[0].startswith("unparseable_number:total_spend")
    # scoring never refits: no new partition, no new model
    assert sorted(p.name for p in (home / "runs").iterdir()) == runs_before


def test_score_command_without_a_model_fails_clearly(tmp_path, capsys):
    src = tmp_path / "x.csv"
    src.write_text("customer_id,total_spend\nA,1\n")
    code = main(["score", "--home", str(tmp_path / "none"), "--input", str(src), "--output",
                 str(tmp_path / "o.parquet")])  # fmt: skip
    assert code == 1
    assert "run the nightly job first" in capsys.readouterr().err


def test_csv_output_escapes_cells_a_spreadsheet_would_run():
    import pandas as pd

    from em_pipeline.scoring import _escape_formulas

    ids = ["=HYPERLINK(1)", "+1", "A-1", "@x"]
    df = pd.DataFrame({"customer_id": ids, "score": [-1.0, 2, 3, 4]})
    out = _escape_formulas(df)
    assert out["customer_id"].tolist() == ["'=HYPERLINK(1)", "'+1", "A-1", "'@x"]
    assert out["score"].tolist() == [-1.0, 2, 3, 4]  # numbers untouched


def test_a_run_date_outside_the_partitions_names_the_valid_range(capsys):
    from em_pipeline.__main__ import main

    assert main(["--run-date", "2999-01-01", "--home", "/nonexistent/never-created"]) == 2
    err = capsys.readouterr().err
    assert "outside the daily partitions" in err and "2024-01-01" in err and "to today" in err
    assert main(["--run-date", "2023-12-31"]) == 2


def test_help_points_to_the_score_command(capsys):
    import pytest

    from em_pipeline.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "score --input" in capsys.readouterr().out


def _score(home, src, out, monkeypatch, path):
    """``score_file`` on the home's registry, forced through one path: 'local' (the store's
    tables and files) or 'mlflow' (``mlflow.pyfunc.load_model``)."""
    from em_pipeline import scoring

    def refuse(*args, **kwargs):
        raise AssertionError(f"score went the other way than {path}")

    with monkeypatch.context() as m:
        m.setattr(scoring, "_mlflow_model" if path == "local" else "_local_champion", refuse)
        if path == "mlflow":
            m.setattr(scoring, "_local_champion", lambda *a: None)
        uri = f"sqlite:///{home / 'mlflow.db'}"
        return scoring.score_file(src, out, tracking_uri=uri)


def test_the_homes_registry_scores_without_mlflow_exactly_as_the_pyfunc_model(
    full_run, tmp_path, monkeypatch
):
    home, _ = full_run
    snap = pd.read_parquet(home / "runs" / RUN_DATE / "raw_customers.parquet").head(50)
    src = tmp_path / "customers.csv"
    snap[["customer_id", *FEATURES]].to_csv(src, index=False)
    local = _score(home, src, tmp_path / "local.parquet", monkeypatch, "local")
    pyfunc = _score(home, src, tmp_path / "pyfunc.parquet", monkeypatch, "mlflow")
    assert (local.model_uri, local.model_version) == (pyfunc.model_uri, pyfunc.model_version)
    a = pd.read_parquet(local.output).drop(columns="scored_at")
    b = pd.read_parquet(pyfunc.output).drop(columns="scored_at")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_local_read_follows_the_registry_alias_and_gives_way_to_mlflow(full_run, tmp_path):
    import sqlite3

    import mlflow

    from em_pipeline.lib.mlflow_logging import mlflow_uris
    from em_pipeline.scoring import _local_champion

    home, _ = full_run
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(home / "mlflow.db") as source, sqlite3.connect(db) as copy:
        source.backup(copy)  # with what the write-ahead log holds
    uri = f"sqlite:///{db}"
    first = _local_champion(uri, "customer-segments", "champion")
    assert first is not None and first.bundle_path.is_file()
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    current = client.get_model_version_by_alias("customer-segments", "champion")
    with mlflow_uris(uri):  # MLflow resolves the version's logged model in the fluent store
        again = client.create_model_version("customer-segments", current.source, current.run_id)
    client.set_registered_model_alias("customer-segments", "champion", again.version)
    moved = _local_champion(uri, "customer-segments", "champion")
    assert moved.version == str(again.version) != first.version
    assert moved.bundle_path == first.bundle_path
    # another registry, an unknown alias, a missing store: MLflow decides
    assert _local_champion("http://mlflow.example:5000", "customer-segments", "champion") is None
    assert _local_champion(uri, "customer-segments", "no-such-alias") is None
    assert _local_champion(f"sqlite:///{tmp_path / 'none.db'}", "customer-segments", "x") is None
