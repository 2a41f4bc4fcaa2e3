"""Ingest of a customer drop: read CSV/Parquet files, type the values, quarantine bad rows.

Nothing is dropped silently: every input row ends up either in the validated snapshot or in the
quarantine table with a ``reason`` (one or more ``code:detail`` items separated by ``"; "``).
Reason codes: ``missing_id``, ``duplicate_id``, ``unparseable_number``, ``negative_value``,
``out_of_range`` (|value| above the schema's ``max_value``: one such value would overflow a
feature's variance), ``all_features_missing``, ``unknown_columns``, ``field_count`` and
``multiline_record`` (a CSV record that cannot be mapped onto the header, see
:func:`read_drop_file`). Problems that concern the whole drop (folder missing,
no files, no rows, a file without a required column, no valid row at all) raise :class:`DropError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from em_pipeline.lib.schema import CustomerSchema

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
#: Robust z beyond which a value is quarantined as out of range (see _flag_robust_outliers): far
#: outside anything a real customer base shows on the raw scale (a uniform feature reaches
#: z ≈ 2.4, a recency in days about 5) ...
DEFAULT_OUTLIER_Z = 50.0
#: ... and on a log scale, where z counts orders of magnitude against the drop's spread: simulated
#: order data reaches 4-7 there (a whale spending 60× the median about 5), a 10⁹-day recency 14.
DEFAULT_OUTLIER_Z_LOG = 10.0
MIN_ROWS_FOR_OUTLIERS = 100
REASON_CODES = (
    "missing_id",
    "duplicate_id",
    "unparseable_number",
    "negative_value",
    "out_of_range",
    "all_features_missing",
    "unknown_columns",
    "field_count",
    "multiline_record",
)
#: Hidden columns of :func:`read_drop_file` for records that could not be read as a row.
PROBLEM, RAW = "__problem__", "__raw__"
UnknownColumnsPolicy = Literal["quarantine", "ignore"]
DuplicatePolicy = Literal["quarantine_all", "keep_first"]


class DropError(ValueError):
    """The drop as a whole cannot be ingested (missing, empty, or without the required columns)."""


@dataclass
class IngestResult:
    snapshot: pd.DataFrame
    quarantine: pd.DataFrame
    files: list[str]
    n_input_rows: int
    reason_counts: dict[str, int]
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    skipped_files: dict[str, str] = field(default_factory=dict)
    #: data rows of each skipped file that could not be decoded (lines after its header)
    skipped_rows: dict[str, int] = field(default_factory=dict)

    @property
    def quarantine_share(self) -> float:
        return len(self.quarantine) / self.n_input_rows if self.n_input_rows else 0.0


#: File endings a drop may use; ``.csv.gz`` is read through gzip, ``.csv.zst`` through
#: pyarrow's zstd codec.
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst")
DROP_SUFFIXES = (*CSV_SUFFIXES, ".parquet", ".pq")


def list_drop_files(folder: str | Path) -> list[Path]:
    """The CSV and Parquet files of a drop folder, sorted by name; an error if there are none."""
    files, _ = scan_drop_folder(folder)
    return files


def scan_drop_folder(folder: str | Path) -> tuple[list[Path], dict[str, str]]:
    """The drop's data files (sorted by name) and every other entry with why it is skipped:
    sub-folders, other file types, hidden and macOS ``._`` files, and links that leave the
    folder (never followed, never read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DropError(f"customer drop folder {folder} does not exist")
    root = folder.resolve()
    files, skipped = [], {}
    for p in sorted(folder.iterdir()):
        reason = _skip_reason(p, root)
        if reason:
            skipped[p.name] = reason
        else:
            files.append(p)
    if not files:
        raise DropError(
            f"customer drop folder {folder} holds no .csv or .parquet file "
            f"({', '.join(DROP_SUFFIXES)})" + (f" (skipped: {skipped})" if skipped else "")
        )
    return files, skipped


def _skip_reason(p: Path, root: Path) -> str | None:
    if p.is_symlink() and root not in p.resolve().parents:
        return "a link to outside the drop folder (not followed)"
    if p.name.startswith("."):
        return "a hidden file (macOS '._' metadata, editor or system file)"
    if p.is_dir():
        return "a sub-folder (only the drop folder's own files are read)"
    if not p.name.lower().endswith(DROP_SUFFIXES):
        return f"not a drop file ({', '.join(DROP_SUFFIXES)})"
    return None


def read_drop_file(path: Path, encoding: str = "auto") -> pd.DataFrame:
    """One drop file as an object-dtype frame (CSV cells stay text, so bad numbers stay visible).

    A CSV record whose number of fields differs from the header's, or that spans several lines
    (a quote left open swallows the lines after it), is never mapped onto the columns: its cells
    are left empty and the hidden columns ``__problem__`` (``field_count:<n>`` or
    ``multiline_record:<lines>``) and ``__raw__`` (the record as read) carry it to quarantine.
    """
    if path.name.lower().endswith(CSV_SUFFIXES):
        df = _read_csv_records(path, encoding)
    else:
        df = _typed_as_text(pd.read_parquet(path))
    df.columns = [str(c).strip() for c in df.columns]
    return df.astype(object)


def _typed_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet columns of date, time or duration type become text naming their type, so a
    timestamp in a feature column is quarantined as unparseable instead of read as a number."""
    for col in df.columns:
        kind = df[col].dtype
        if pd.api.types.is_datetime64_any_dtype(kind) or pd.api.types.is_timedelta64_dtype(kind):
            df[col] = df[col].map(lambda v, kind=kind: None if pd.isna(v) else f"{kind} {v}")
    return df


def _csv_encoding(path: Path, declared: str = "auto") -> str:
    """The declared encoding; with "auto", UTF-16 when the file starts with its byte-order mark,
    else UTF-8 (a BOM is dropped)."""
    if declared != "auto":
        return declared
    with _open_bytes(path) as raw:
        head = raw.read(2)
    return "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed for ``.gz`` and ``.zst``."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        with pa.input_stream(str(path), compression="zstd") as stream:
            return io.BytesIO(stream.read())
    return open(path, "rb")


def _read_csv_records(path: Path, encoding: str = "auto") -> pd.DataFrame:
    text = io.TextIOWrapper(_open_bytes(path), encoding=_csv_encoding(path, encoding), newline="")
    with text as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return pd.DataFrame()
        width, line = len(header), reader.line_num
        rows, problems, raws = [], [], []
        for record in reader:
            lines, line = reader.line_num - line, reader.line_num
            if not any(cell.strip() for cell in record) and len(record) <= 1:
                continue  # a blank line
            problem = None
            if lines > 1:
                problem = f"multiline_record:{lines} lines read as one record (a quote left open?)"
            elif len(record) != width:
                problem = f"field_count:{len(record)} fields, the header has {width}"
            rows.append([""] * width if problem else record)
            problems.append(problem)
            raws.append(",".join(record) if problem else None)
    df = pd.DataFrame(rows, columns=header, dtype=object)
    if any(problems):
        df[PROBLEM], df[RAW] = problems, raws
    return df


def _is_missing(s: pd.Series) -> pd.Series:
    missing = s.isna()
    text = s.map(lambda v: isinstance(v, str) and v.strip().lower() in MISSING_TOKENS)
    return (missing | text.astype(bool)).astype(bool)


def _as_text(v: object) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


def _id_text(v: object) -> str | None:
    """A customer id as text: ids are strings, so CSV's "005" and "5" stay distinct, while a
    numeric id (Parquet) is written without a float's ".0" (6.0 -> "6"), as a CSV export would."""
    if isinstance(v, bool | np.bool_):
        return str(v)
    if isinstance(v, float | np.floating) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    return _as_text(v)


def validate_drop(
    frames: list[tuple[str, pd.DataFrame]],
    schema: CustomerSchema,
    *,
    unknown_columns: UnknownColumnsPolicy = "quarantine",
    duplicates: DuplicatePolicy = "quarantine_all",
    outlier_robust_z: float = DEFAULT_OUTLIER_Z,
    outlier_robust_z_log: float = DEFAULT_OUTLIER_Z_LOG,
) -> IngestResult:
    """Type and check the rows of a drop; split them into a snapshot and a quarantine table."""
    if not frames:
        raise DropError("the customer drop holds no file")
    ignored: dict[str, list[str]] = {}
    parts = [_typed_rows(name, df, schema, unknown_columns, ignored) for name, df in frames]
    rows = pd.concat(parts, ignore_index=True)
    n_rows = len(rows)
    if n_rows == 0:
        raise DropError(f"the customer drop ({len(frames)} file(s)) holds no data row")
    if outlier_robust_z > 0:
        _flag_robust_outliers(rows, schema, outlier_robust_z, outlier_robust_z_log)
    ids = rows[schema.id_column]
    dup = ids.notna() & ids.duplicated(keep=False if duplicates == "quarantine_all" else "first")
    for i in np.flatnonzero(dup.to_numpy()):
        rows["_reasons"].iat[i].append("duplicate_id")
    bad_mask = rows["_reasons"].map(bool).to_numpy(dtype=bool)
    counts = Counter(r.split(":", 1)[0] for rs in rows["_reasons"] for r in rs)
    snapshot = _snapshot(rows.loc[~bad_mask], schema)
    if snapshot.empty:
        raise DropError(
            f"no valid customer in the drop: all {n_rows} row(s) were quarantined ({dict(counts)})"
        )
    return IngestResult(
        snapshot=snapshot,
        quarantine=_quarantine(rows.loc[bad_mask], schema),
        files=[name for name, _ in frames],
        n_input_rows=n_rows,
        reason_counts={code: int(counts.get(code, 0)) for code in REASON_CODES},
        ignored_columns=ignored,
    )


def _typed_rows(
    name: str,
    df: pd.DataFrame,
    schema: CustomerSchema,
    unknown_columns: UnknownColumnsPolicy,
    ignored: dict[str, list[str]],
) -> pd.DataFrame:
    """The rows of one file, typed: id, features (NaN where missing or invalid), their raw text,
    the unknown columns as JSON (``_extra``) and each row's list of reasons (``_reasons``)."""
    missing_cols = [c for c in schema.columns if c not in df.columns]
    if missing_cols:
        raise DropError(
            f"{name}: required column(s) {missing_cols} missing; found {list(df.columns)}"
        )
    extra = [c for c in df.columns if c not in schema.columns and c not in (PROBLEM, RAW)]
    reasons = pd.Series([[] for _ in range(len(df))], index=df.index, dtype=object)
    if extra and unknown_columns == "quarantine":
        for r in reasons:
            r.append(f"unknown_columns:{','.join(extra)}")
    elif extra:
        ignored[name] = extra
    out = pd.DataFrame(index=df.index)
    out["source_file"] = name
    out["source_row"] = np.arange(1, len(df) + 1)
    ids = df[schema.id_column].map(_id_text)
    ids = ids.map(lambda v: v.strip() if isinstance(v, str) else v)
    id_missing = _is_missing(ids)
    for i in np.flatnonzero(id_missing.to_numpy()):
        reasons.iat[i].append("missing_id")
    out[schema.id_column] = ids.where(~id_missing, None)
    nonneg = {f.name for f in schema.features if f.nonnegative}
    all_missing = np.ones(len(df), dtype=bool)
    for f in schema.feature_names:
        raw = df[f]
        miss = _is_missing(raw).to_numpy()
        out[f] = _parsed_feature(raw, miss, f, f in nonneg, schema.max_value, reasons)
        out[f"_raw_{f}"] = raw.map(_as_text)
        all_missing &= miss
    for i in np.flatnonzero(all_missing):
        reasons.iat[i].append("all_features_missing")
    out["_extra"] = (
        df[extra].apply(lambda r: json.dumps({k: _as_text(v) for k, v in r.items()}), axis=1)
        if extra and len(df)
        else None
    )
    if PROBLEM in df.columns:  # an unreadable record: its own reason only, the raw text kept
        problems, raws = df[PROBLEM], df[RAW]
        for i in np.flatnonzero(problems.notna().to_numpy()):
            reasons.iat[i] = [problems.iat[i]]
            out.iat[i, out.columns.get_loc("_extra")] = json.dumps({"raw_record": raws.iat[i]})
    out["_reasons"] = reasons
    return out


def _parsed_feature(
    raw: pd.Series,
    miss: np.ndarray,
    name: str,
    nonnegative: bool,
    max_value: float,
    reasons: pd.Series,
) -> np.ndarray:
    """One feature column as floats, NaN where missing or invalid; each invalid cell's reason
    (unparseable, negative where the feature is non-negative, beyond ``max_value``) is added to
    its row's list."""
    cleaned = raw.map(lambda v: v.strip() if isinstance(v, str) else v)
    parsed = pd.to_numeric(cleaned.where(~miss, None), errors="coerce").astype("float64")
    values = parsed.to_numpy(dtype=float, copy=True)
    bad = ~miss & ~np.isfinite(values)
    for i in np.flatnonzero(bad):
        reasons.iat[i].append(f"unparseable_number:{name}={raw.iat[i]!r}")
    neg = ~miss & ~bad & (values < 0) if nonnegative else np.zeros(len(raw), bool)
    for i in np.flatnonzero(neg):
        reasons.iat[i].append(f"negative_value:{name}={raw.iat[i]}")
    huge = ~miss & ~bad & (np.abs(np.where(bad, 0.0, values)) > max_value)
    for i in np.flatnonzero(huge):
        reasons.iat[i].append(
            f"out_of_range:{name}={raw.iat[i]} (|value| > max_value {max_value:g})"
        )
    values[miss | bad] = np.nan
    return values


def _snapshot(good: pd.DataFrame, schema: CustomerSchema) -> pd.DataFrame:
    feats = schema.feature_names
    snapshot = good[[schema.id_column, *feats, "source_file"]].reset_index(drop=True)
    snapshot[schema.id_column] = snapshot[schema.id_column].astype(str)
    snapshot[feats] = snapshot[feats].astype("float64")
    return snapshot


def _quarantine(bad: pd.DataFrame, schema: CustomerSchema) -> pd.DataFrame:
    """The quarantined rows as they came (raw text), with their reasons joined."""
    return pd.DataFrame(
        {
            "source_file": bad["source_file"].astype(str),
            "source_row": bad["source_row"].astype("int64"),
            schema.id_column: bad[schema.id_column].astype(object),
            **{f: bad[f"_raw_{f}"].astype(object) for f in schema.feature_names},
            "extra_columns": bad["_extra"].astype(object),
            "reason": bad["_reasons"].map("; ".join).astype(str),
        }
    ).reset_index(drop=True)


def _flag_robust_outliers(
    rows: pd.DataFrame, schema: CustomerSchema, z_max: float, z_max_log: float
) -> None:
    """Quarantine values more than ``z_max_log`` (a feature the model sees on a log scale) or
    ``z_max`` (on the raw scale) robust standard deviations from the drop's median on that scale
    (sign(x)·log1p|x| for transformed features, else the value): z = |g(x) − median g| / s with
    s = (q₀.₉₉ − q₀.₀₁) / (2 · 2.326), the spread of the central 98 % (σ for a Gaussian). Unlike
    the MAD it does not collapse on tied counts (visits per month of 1 or 2). One such value
    would dominate a feature's standard deviation, or a segment's profile. Needs
    ``MIN_ROWS_FOR_OUTLIERS`` values of the feature, and s > 0."""
    for f in schema.features:
        values = rows[f.name].to_numpy(dtype=float)
        finite = np.isfinite(values)
        if finite.sum() < MIN_ROWS_FOR_OUTLIERS:
            continue
        log = f.transform != "none"
        g = np.full_like(values, np.nan)
        v = values[finite]
        g[finite] = np.sign(v) * np.log1p(np.abs(v)) if log else v
        low, center, high = np.quantile(g[finite], [0.01, 0.5, 0.99])
        scale = (high - low) / (2 * 2.326)
        if not scale > 0:
            continue
        z = np.abs(g - center) / scale
        limit = z_max_log if log else z_max
        for i in np.flatnonzero(finite & (z > limit)):
            rows["_reasons"].iat[i].append(
                f"out_of_range:{f.name}={rows[f'_raw_{f.name}'].iat[i]} ({z[i]:.0f} robust SDs "
                f"from the drop's median on the {'log1p' if log else 'raw'} scale > {limit:g})"
            )


def _data_lines(path: Path) -> int:
    """Lines after the header of a file that cannot be decoded (counted in bytes)."""
    with _open_bytes(path) as raw:
        data = raw.read()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return max(0, lines - 1)


def ingest_folder(
    folder: str | Path,
    schema: CustomerSchema,
    *,
    unknown_columns: UnknownColumnsPolicy = "quarantine",
    duplicates: DuplicatePolicy = "quarantine_all",
    encoding: str = "auto",
    undecodable_files: Literal["skip", "fail"] = "skip",
    outlier_robust_z: float = DEFAULT_OUTLIER_Z,
    outlier_robust_z_log: float = DEFAULT_OUTLIER_Z_LOG,
) -> IngestResult:
    """Read every CSV/Parquet file of ``folder`` and validate its rows (:func:`validate_drop`);
    the entries that are not read are listed in ``skipped_files`` with why. ``encoding`` is
    "auto" (UTF-16 by its BOM, else UTF-8) or a codec name declared for the drop; a file it cannot
    decode is skipped (its rows counted in ``skipped_rows``) or, with ``undecodable_files="fail"``,
    rejects the drop."""
    files, skipped = scan_drop_folder(folder)
    frames, skipped_rows = [], {}
    for p in files:
        try:
            frames.append((p.name, read_drop_file(p, encoding)))
        except UnicodeDecodeError as e:
            why = (
                f"not readable as {'UTF-8 or UTF-16' if encoding == 'auto' else encoding} (byte "
                f"{e.object[e.start : e.start + 1]!r} at offset {e.start}): re-export it as UTF-8 "
                "or declare the drop's encoding"
            )
            if undecodable_files == "fail":
                raise DropError(f"{p.name}: {why}") from e
            skipped[p.name], skipped_rows[p.name] = why, _data_lines(p)
        except (OSError, EOFError, pa.ArrowException) as e:
            if not p.name.lower().endswith((".gz", ".zst")):
                raise
            why = f"not a readable compressed file ({type(e).__name__}: {e}): rows unknown"
            if undecodable_files == "fail":
                raise DropError(f"{p.name}: {why}") from e
            skipped[p.name] = why
    if not frames:
        raise DropError(f"no file of the drop {folder} could be read: {skipped}")
    result = validate_drop(
        frames,
        schema,
        unknown_columns=unknown_columns,
        duplicates=duplicates,
        outlier_robust_z=outlier_robust_z,
        outlier_robust_z_log=outlier_robust_z_log,
    )
    result.skipped_files = skipped
    result.skipped_rows = skipped_rows
    for name, n in skipped_rows.items():
        skipped[name] += f" ({n} row(s) not read)"
    return result
