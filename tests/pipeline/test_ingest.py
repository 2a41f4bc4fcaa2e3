"""Each bad-input case gives its quarantine reason, or a clear failure for the drop as a whole."""

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_pipeline.defs.resources import CustomerSchemaResource
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.validation import DropError, ingest_folder

SCHEMA = CustomerSchema()
GOOD = {
    "customer_id": "A1",
    "total_spend": "120.5",
    "visits_per_month": "2",
    "avg_cart_size": "3.5",
    "days_since_last_order": "12",
}


def _csv(folder, rows, name="drop.csv", columns=None):
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=columns or list(GOOD))
    df.to_csv(folder / name, index=False)
    return folder


def _good(i, **over):
    return {**GOOD, "customer_id": f"G{i}", **over}


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ({"total_spend": "12,50 EUR"}, "unparseable_number:total_spend"),
        ({"visits_per_month": "lots"}, "unparseable_number:visits_per_month"),
        ({"avg_cart_size": "inf"}, "unparseable_number:avg_cart_size"),
        ({"visits_per_month": "-3"}, "negative_value:visits_per_month"),
        ({"days_since_last_order": "-1"}, "negative_value:days_since_last_order"),
        (
            {
                "total_spend": "",
                "visits_per_month": "NA",
                "avg_cart_size": "null",
                "days_since_last_order": " ",
            },
            "all_features_missing",
        ),
        ({"customer_id": ""}, "missing_id"),
    ],
)
def test_bad_rows_are_quarantined_with_their_reason(tmp_path, bad_row, reason):
    rows = [_good(i) for i in range(5)] + [{**_good(99), **bad_row}]
    res = ingest_folder(_csv(tmp_path / "drop", rows), SCHEMA)
    assert len(res.snapshot) == 5 and "G99" not in set(res.snapshot["customer_id"])
    assert len(res.quarantine) == 1
    assert reason in res.quarantine["reason"].iloc[0]
    assert res.reason_counts[reason.split(":")[0]] == 1
    assert res.quarantine["source_file"].iloc[0] == "drop.csv"
    assert res.quarantine["source_row"].iloc[0] == 6


def test_a_negative_net_spend_is_a_customer_not_a_bad_row(tmp_path):
    # refunds can exceed purchases: the default schema lets total_spend be negative
    rows = [_good(i) for i in range(5)] + [_good(5, total_spend="-45.10")]
    res = ingest_folder(_csv(tmp_path / "drop", rows), SCHEMA)
    assert res.quarantine.empty
    assert res.snapshot.set_index("customer_id").loc["G5", "total_spend"] == -45.10


def test_missing_cells_are_kept_as_nan_not_quarantined(tmp_path):
    rows = [_good(0, total_spend=""), _good(1, avg_cart_size="n/a"), _good(2)]
    res = ingest_folder(_csv(tmp_path / "drop", rows), SCHEMA)
    assert len(res.snapshot) == 3 and res.quarantine.empty
    assert res.snapshot["total_spend"].isna().sum() == 1
    assert res.snapshot["avg_cart_size"].isna().sum() == 1


def test_duplicate_ids_across_files(tmp_path):
    drop = tmp_path / "drop"
    _csv(drop, [_good(1), _good(2)], "a.csv")
    pd.DataFrame([{**_good(2), "total_spend": 5.0}]).astype({"total_spend": float}).to_parquet(
        drop / "b.parquet"
    )
    res = ingest_folder(drop, SCHEMA)
    assert list(res.snapshot["customer_id"]) == ["G1"]
    assert list(res.quarantine["reason"]) == ["duplicate_id", "duplicate_id"]
    keep = ingest_folder(drop, SCHEMA, duplicates="keep_first")
    assert sorted(keep.snapshot["customer_id"]) == ["G1", "G2"]
    assert list(keep.quarantine["source_file"]) == ["b.parquet"]


def test_unknown_columns_quarantine_or_ignore(tmp_path):
    drop = _csv(tmp_path / "drop", [_good(1)], "a.csv")
    _csv(drop, [{**_good(2), "coupon": "X"}], "b.csv", columns=[*GOOD, "coupon"])
    res = ingest_folder(drop, SCHEMA)
    assert list(res.snapshot["customer_id"]) == ["G1"]
    assert res.quarantine["reason"].iloc[0] == "unknown_columns:coupon"
    assert '"coupon": "X"' in res.quarantine["extra_columns"].iloc[0]
    ignored = ingest_folder(drop, SCHEMA, unknown_columns="ignore")
    assert sorted(ignored.snapshot["customer_id"]) == ["G1", "G2"]
    assert ignored.ignored_columns == {"b.csv": ["coupon"]}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "no .csv or .parquet file"),
        (lambda d: _csv(d, []), "holds no data row"),
        (lambda d: _csv(d, [{"customer_id": "x"}], columns=["customer_id"]), "required column"),
        (lambda d: _csv(d, [_good(1, avg_cart_size="-5")]), "no valid customer"),
    ],
    ids=["missing-folder", "empty-folder", "header-only", "missing-column", "all-bad"],
)
def test_whole_drop_problems_raise_a_clear_error(tmp_path, make, message):
    drop = tmp_path / "drop"
    make(drop)
    with pytest.raises(DropError, match=message):
        ingest_folder(drop, SCHEMA)


def test_missing_drop_fails_the_run_clearly_and_builds_no_model(tmp_path):
    result = run_pipeline(tmp_path / "home", drop_dir=str(tmp_path / "drops" / "{run_date}"))
    assert not result.success
    msg = failure_messages(result)
    assert "customer drop for 2024-05-01 rejected" in msg
    assert str(tmp_path / "drops" / "2024-05-01") in msg
    assert not (tmp_path / "home" / "runs" / "2024-05-01" / "segment_model.json").exists()
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()


def test_real_drop_folder_with_run_date_template(tmp_path):
    """A folder drop is read for the partition's date; quarantine share above the threshold stops
    the run before any model is fitted."""
    drop = tmp_path / "drops" / "2024-05-01"
    rows = [_good(i, total_spend=str(10 + i)) for i in range(30)] + [
        _good(100 + i, total_spend="oops") for i in range(10)
    ]
    _csv(drop, rows)
    home = tmp_path / "home"
    result = run_pipeline(home, drop_dir=str(tmp_path / "drops" / "{run_date}"))
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["raw_schema"].passed
    assert not checks["quarantine_share_below_threshold"].passed
    assert checks["quarantine_share_below_threshold"].metadata["quarantine_share"].value == 0.25
    q = pd.read_parquet(home / "runs" / "2024-05-01" / "quarantine.parquet")
    assert len(q) == 10
    assert not (home / "runs" / "2024-05-01" / "customer_features.parquet").exists()


def test_an_absurd_value_is_quarantined_as_out_of_range_and_cannot_break_a_scale(tmp_path):
    rows = [_good(i) for i in range(5)] + [_good(99, days_since_last_order="1e200")]
    res = ingest_folder(_csv(tmp_path / "drop", rows), SCHEMA)
    assert len(res.snapshot) == 5 and res.reason_counts["out_of_range"] == 1
    assert "out_of_range:days_since_last_order=1e200" in res.quarantine["reason"].iloc[0]
    tight = CustomerSchema(max_value=100.0)
    rows = [_good(i) for i in range(3)] + [_good(9, total_spend="50")]
    res = ingest_folder(_csv(tmp_path / "drop2", rows), tight)
    assert res.reason_counts["out_of_range"] == 3  # total_spend 120.5 > 100
    assert list(res.snapshot["customer_id"]) == ["G9"]


def _raw_csv(folder, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drop.csv").write_text(text)
    return folder


def test_rows_with_the_wrong_number_of_fields_are_quarantined_never_shifted(tmp_path):
    header = ",".join(GOOD)
    lines = [header, "G1,120.5,2,3.5,12", "G2,99.0,1,2.0,30,", "G3,50.0,1,2.0", "G4,10,1,1,1"]
    res = ingest_folder(_raw_csv(tmp_path / "drop", "\n".join(lines) + "\n"), SCHEMA)
    assert sorted(res.snapshot["customer_id"]) == ["G1", "G4"]  # nothing shifted into place
    q = res.quarantine.set_index("source_row")
    assert q.loc[2, "reason"] == "field_count:6 fields, the header has 5"
    assert q.loc[3, "reason"] == "field_count:4 fields, the header has 5"
    assert "G2,99.0,1,2.0,30," in q.loc[2, "extra_columns"]
    assert res.n_input_rows == len(res.snapshot) + len(res.quarantine) == 4


def test_a_quote_left_open_is_one_quarantined_record_not_silently_merged_rows(tmp_path):
    header = ",".join(GOOD)
    lines = [header, "G1,120.5,2,3.5,12", 'G2,"99.0,1,2.0,30', "G3,50.0,1,2.0,4", "G4,1,1,1,1"]
    res = ingest_folder(_raw_csv(tmp_path / "drop", "\n".join(lines) + "\n"), SCHEMA)
    assert list(res.snapshot["customer_id"]) == ["G1"]
    # the open quote swallowed the three lines after it: one record, quarantined, lines named
    assert res.quarantine["reason"].tolist() == [
        "multiline_record:3 lines read as one record (a quote left open?)"
    ]
    assert "G3,50.0" in res.quarantine["extra_columns"].iloc[0]


def test_numeric_ids_from_parquet_match_the_same_ids_in_csv(tmp_path):
    folder = _csv(tmp_path / "drop", [_good(0, customer_id="6"), _good(1, customer_id="005")])
    parquet = pd.DataFrame(
        {"customer_id": [6.0, 7.0], **{f: [1.0, 2.0] for f in SCHEMA.feature_names}}
    )
    parquet.to_parquet(folder / "more.parquet", index=False)
    res = ingest_folder(folder, SCHEMA)
    # 6.0 is the CSV's "6": a duplicate, both copies quarantined; "005" stays its own id
    assert sorted(res.snapshot["customer_id"]) == ["005", "7"]
    assert res.reason_counts["duplicate_id"] == 2


def test_gzipped_csv_is_read_and_every_other_entry_is_listed_as_skipped(tmp_path):
    import gzip

    folder = _csv(tmp_path / "drop", [_good(0), _good(1)])
    text = (folder / "drop.csv").read_text().replace("G0", "Z0").replace("G1", "Z1")
    with gzip.open(folder / "more.csv.gz", "wt") as handle:
        handle.write(text)
    (folder / "._drop.csv").write_bytes(b"\x00\x05\x16\x07 Mac OS X metadata \xfc")
    (folder / "notes.txt").write_text("customer_id\nX1\n")
    (folder / "archive").mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_text("API_KEY=do-not-read\n")
    (folder / "link.csv").symlink_to(secret)
    res = ingest_folder(folder, SCHEMA)
    assert sorted(res.snapshot["customer_id"]) == ["G0", "G1", "Z0", "Z1"]
    assert set(res.skipped_files) == {"._drop.csv", "notes.txt", "archive", "link.csv"}
    assert "outside the drop folder" in res.skipped_files["link.csv"]
    assert "sub-folder" in res.skipped_files["archive"]
    assert "do-not-read" not in repr(res)  # the link's target was never read


def test_utf16_and_bom_files_are_read_and_an_undecodable_file_is_skipped_with_why(tmp_path):
    folder = _csv(tmp_path / "drop", [_good(0)])
    text = (folder / "drop.csv").read_text()
    (folder / "utf16.csv").write_text(text.replace("G0", "U0"), encoding="utf-16")
    (folder / "bom.csv").write_text(text.replace("G0", "B0"), encoding="utf-8-sig")
    (folder / "latin1.csv").write_bytes(text.replace("G0", "M\u00fcller").encode("latin-1"))
    res = ingest_folder(folder, SCHEMA)
    assert sorted(res.snapshot["customer_id"]) == ["B0", "G0", "U0"]
    assert "not readable as UTF-8" in res.skipped_files["latin1.csv"]
    assert "0xfc" in res.skipped_files["latin1.csv"] or "\\xfc" in res.skipped_files["latin1.csv"]


def test_a_timestamp_column_in_parquet_is_never_read_as_a_number(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    values = {f: [1.0, 2.0] for f in SCHEMA.feature_names}
    df = pd.DataFrame({"customer_id": ["P1", "P2"], **values})
    df["days_since_last_order"] = pd.to_datetime(["2026-11-30", None])
    df.to_parquet(folder / "drop.parquet", index=False)
    res = ingest_folder(folder, SCHEMA)
    assert list(res.snapshot["customer_id"]) == ["P2"]  # its missing timestamp is a missing cell
    reason = res.quarantine["reason"].iloc[0]
    assert reason.startswith("unparseable_number:days_since_last_order=") and "2026-11-30" in reason


def test_the_robust_outlier_rule_flags_absurd_values_not_tied_counts_or_whales(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    rows = [
        _good(
            i,
            total_spend=f"{rng.lognormal(4, 1.5):.2f}",  # heavy tail, whales included
            visits_per_month=str(int(rng.choice([1, 1, 1, 2, 2, 3, 40]))),  # tied counts
            days_since_last_order=str(int(rng.integers(0, 366))),
        )
        for i in range(n)
    ]
    rows.append(_good(n, days_since_last_order="1000000000"))
    res = ingest_folder(_csv(tmp_path / "drop", rows), SCHEMA)
    assert res.quarantine["customer_id"].tolist() == [f"G{n}"]
    assert res.quarantine["reason"].iloc[0].startswith("out_of_range:days_since_last_order=")
    # below MIN_ROWS_FOR_OUTLIERS values no scale is estimated: only max_value applies
    few = ingest_folder(_csv(tmp_path / "few", rows[:5] + rows[-1:]), SCHEMA)
    # on the raw scale the limit is outlier_robust_z (50): days as is, 10⁹ is millions of SDs out
    raw_days = CustomerSchemaResource(
        mixture_power_transform=False, log1p_features=["total_spend", "avg_cart_size"]
    ).get()
    raw = ingest_folder(_csv(tmp_path / "raw", rows), raw_days)
    assert raw.quarantine["customer_id"].tolist() == [f"G{n}"]
    assert "on the raw scale > 50" in raw.quarantine["reason"].iloc[0]
    assert few.quarantine.empty


def test_zstd_csv_is_read_and_a_corrupt_compressed_file_is_skipped_with_why(tmp_path):
    import pyarrow as pa

    folder = _csv(tmp_path / "drop", [_good(0)])
    text = (folder / "drop.csv").read_text().replace("G0", "Z0")
    with pa.output_stream(str(folder / "more.csv.zst"), compression="zstd") as out:
        out.write(text.encode())
    (folder / "broken.csv.gz").write_bytes(b"this is not gzip")
    (folder / "broken.csv.zst").write_bytes(b"nor zstd")
    res = ingest_folder(folder, SCHEMA)
    assert sorted(res.snapshot["customer_id"]) == ["G0", "Z0"]
    assert set(res.skipped_files) == {"broken.csv.gz", "broken.csv.zst"}
    assert all("not a readable compressed file" in why for why in res.skipped_files.values())
    with pytest.raises(DropError, match=r"broken\.csv\.gz: not a readable compressed file"):
        ingest_folder(folder, SCHEMA, undecodable_files="fail")
