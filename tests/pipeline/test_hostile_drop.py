"""One drop holding every hostile case at once: nothing is lost, nothing is shifted into place,
and the CLI's closing block names each cause."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from em_pipeline.__main__ import main
from em_pipeline.lib.sample_data import write_sample_drop
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.validation import ingest_folder

HEADER = "customer_id,total_spend,visits_per_month,avg_cart_size,days_since_last_order"
GOOD = {  # id -> the values written, to prove no value was shifted
    "TC1": (120.5, 2.0, 3.5, 12.0),
    "RG1": (80.0, 1.0, 2.0, 40.0),
    "RQ1": (60.0, 3.0, 1.5, 5.0),
    "U16": (75.0, 2.0, 2.5, 9.0),
    "BOM": (55.0, 1.0, 2.0, 20.0),
    "GZ1": (95.0, 4.0, 3.0, 3.0),
    "PQ1": (70.0, 2.0, 2.0, 14.0),
    '=HYPERLINK("http://x.example","y")': (65.0, 1.0, 1.0, 30.0),
}


def _row(cid: str) -> str:
    quoted = '"' + cid.replace('"', '""') + '"' if "," in cid or '"' in cid else cid
    return ",".join([quoted, *(f"{v:g}" for v in GOOD[cid])])


def _hostile_drop(root):
    folder = root / "drop"
    write_sample_drop(folder, n_customers=400, seed=3)
    (folder / "trailing_comma.csv").write_text(f"{HEADER}\n{_row('TC1')}\nTC2,99.0,1,2.0,30,\n")
    (folder / "ragged.csv").write_text(f"{HEADER}\n{_row('RG1')}\nRG2,50.0,1,2.0\n")
    (folder / "runaway_quote.csv").write_text(
        f'{HEADER}\n{_row("RQ1")}\nRQ2,"99.0,1,2.0,30\nRQ3,50.0,1,2.0,4\nRQ4,1,1,1,1\n'
    )
    (folder / "latin1.csv").write_bytes(
        f"{HEADER}\nM\u00fcller,1,1,1,1\nX2,2,2,2,2\n".encode("latin-1")
    )
    (folder / "utf16.csv").write_text(f"{HEADER}\n{_row('U16')}\n", encoding="utf-16")
    (folder / "bom.csv").write_text(f"{HEADER}\n{_row('BOM')}\n", encoding="utf-8-sig")
    (folder / "._customers_web.csv").write_bytes(b"\x00\x05\x16\x07Mac OS X\xfc")
    with gzip.open(folder / "more.csv.gz", "wt") as handle:
        handle.write(f"{HEADER}\n{_row('GZ1')}\n")
    (folder / "archive").mkdir()
    (folder / "archive" / "old.csv").write_text(f"{HEADER}\nOLD1,1,1,1,1\n")
    secret = root / "secret.txt"
    secret.write_text("API_KEY=do-not-read\n")
    (folder / "link.csv").symlink_to(secret)
    features = CustomerSchema().feature_names
    good = pd.DataFrame([["PQ1", *GOOD["PQ1"]]], columns=["customer_id", *features])
    good.to_parquet(folder / "store_extra.parquet", index=False)
    stamps = pd.DataFrame([["PQ2", 1.0, 1.0, 1.0, 0.0]], columns=["customer_id", *features])
    stamps["days_since_last_order"] = pd.to_datetime(["2026-11-30"])  # a timestamp column
    stamps.to_parquet(folder / "stamps.parquet", index=False)
    (folder / "absurd.csv").write_text(f"{HEADER}\nHUGE,1e200,1,1,1\nFAR,10,1,1,1e9\n")
    (folder / "formula.csv").write_text(f"{HEADER}\n{_row(list(GOOD)[-1])}\n")
    return folder


def _physical_rows(folder) -> int:
    """Data lines of every drop file, counted without the ingest code (bytes and Parquet
    metadata), including files the ingest cannot decode."""
    total = 0
    for p in folder.iterdir():
        if p.is_symlink() or p.is_dir() or p.name.startswith("."):
            continue
        if p.suffix == ".parquet":
            total += pq.ParquetFile(p).metadata.num_rows
            continue
        data = gzip.open(p).read() if p.name.endswith(".gz") else p.read_bytes()
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            data = data.decode("utf-16").encode()
        total += data.count(b"\n") - 1
    return total


@pytest.fixture
def hostile(tmp_path):
    return _hostile_drop(tmp_path)


def test_every_row_is_accounted_for_and_none_is_shifted(hostile):
    res = ingest_folder(hostile, CustomerSchema())
    q = res.quarantine
    extra_lines = (
        q["reason"].str.extract(r"multiline_record:(\d+) lines")[0].dropna().astype(int) - 1
    ).sum()
    skipped_rows = sum(res.skipped_rows.values())
    assert _physical_rows(hostile) == len(res.snapshot) + len(q) + extra_lines + skipped_rows
    assert res.skipped_rows == {"latin1.csv": 2}
    # no value shifted into place: the good rows carry exactly what was written ...
    snap = res.snapshot.set_index("customer_id")
    for cid, values in GOOD.items():
        assert tuple(snap.loc[cid, CustomerSchema().feature_names]) == values, cid
    # ... and no malformed row was accepted
    assert not {"TC2", "RG2", "RQ2", "RQ3", "RQ4", "PQ2", "HUGE", "FAR"} & set(snap.index)
    reasons = dict(zip(q["customer_id"].fillna(""), q["reason"], strict=True))
    assert reasons["HUGE"].startswith("out_of_range:total_spend=1e200")
    assert reasons["FAR"].startswith("out_of_range:days_since_last_order=1e9 (")
    assert reasons["PQ2"].startswith("unparseable_number:days_since_last_order=")
    assert set(res.skipped_files) == {"latin1.csv", "._customers_web.csv", "archive", "link.csv"}
    assert "do-not-read" not in json.dumps(res.skipped_files)


def test_the_closing_block_names_every_cause(hostile, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    home = tmp_path / "home"
    args = ["--home", str(home), "--drop-dir", str(hostile), "--run-date", "2024-05-01"]
    assert main([*args, "--k-max", "3", "--n-init", "1"]) == 0
    out = capsys.readouterr().out
    causes = next(x for x in out.splitlines() if x.startswith("  quarantined by reason:"))
    for code in ("field_count", "multiline_record", "out_of_range", "unparseable_number"):
        assert code in causes, (code, causes)
    for entry, why in (
        ("latin1.csv", "not readable as UTF-8 or UTF-16 (byte b'\\xfc'"),
        ("._customers_web.csv", "hidden file"),
        ("archive", "sub-folder"),
        ("link.csv", "outside the drop folder"),
    ):
        line = next(x for x in out.splitlines() if x.startswith(f"  skipped {entry}:"))
        assert why in line, line
    assert "(2 row(s) not read)" in out
    assert "do-not-read" not in out
    published = pd.read_parquet(home / "published" / "customer_segments.parquet")
    assert list(GOOD)[-1] in set(published["customer_id"])  # a formula-like id is just an id


def test_a_feature_that_is_zero_for_every_customer_does_not_stop_the_night(tmp_path):
    from pipeline_helpers import failure_messages, run_pipeline

    from em_pipeline.lib.sample_data import generate_customers

    df, _ = generate_customers(400, seed=2, generator="orders")
    df["visits_per_month"] = 0.0
    (tmp_path / "drop").mkdir()
    df.to_csv(tmp_path / "drop" / "customers.csv", index=False)
    result = run_pipeline(tmp_path / "home", drop_dir=str(tmp_path / "drop"))
    assert result.success, failure_messages(result)
