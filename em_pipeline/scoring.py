"""Scoring between refits: new or changed customers scored by the champion, without refitting.

``python -m em_pipeline score --input customers.csv --output scored.parquet`` loads the registered
pyfunc model ``models:/<registered model>@champion`` from the MLflow registry (the alias moves only
when a nightly run is promoted, so these are the ids BI sees), validates the file with the same
rules as the nightly ingest (bad rows are written to ``<output>.rejected.<ext>`` with a reason,
extra columns are ignored, the first copy of a duplicated id is kept) and writes one row per valid
customer: ``customer_id, segment, segment_label, confidence, prob_segment_<id>…, model_uri,
model_version, scored_at``.

With the home's own registry (a local SQLite MLflow store whose models sit in a local artifact
folder, the default), the alias and the model's ``segment_bundle`` file are read straight from
the store's tables and the model's ``MLmodel`` file, and the bundle scores exactly as the pyfunc
model's ``predict`` does (``SegmentBundle.score``), without importing MLflow (seconds of a short
score). Any other registry, an explicit ``--model-uri``, or a store laid out differently goes
through ``mlflow.pyfunc.load_model``.
"""

from __future__ import annotations

import sqlite3
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml


@dataclass(frozen=True)
class ScoreResult:
    output: Path
    rejected: Path | None
    n_scored: int
    n_rejected: int
    model_uri: str
    model_version: str
    segment_counts: dict[int, int]


#: First characters that make a spreadsheet run a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _escape_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe (OWASP's
    CSV-injection advice); numbers are left alone."""
    out = df.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].map(_escape_cell)
    return out


def _escape_cell(v: object) -> object:
    return "'" + v if isinstance(v, str) and v.startswith(_FORMULA_STARTS) else v


def _write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        _escape_formulas(df).to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class _LocalChampion:
    version: str
    bundle_path: Path


def _local_champion(tracking_uri: str, name: str, alias: str) -> _LocalChampion | None:
    """``name@alias``'s version and ``segment_bundle`` file, read from a local SQLite MLflow
    store (tables ``registered_model_aliases``, ``model_versions``) and the model's ``MLmodel``;
    None when the store is elsewhere or laid out otherwise (the caller then asks MLflow)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            row = con.execute(
                "SELECT v.version, v.storage_location FROM registered_model_aliases a "
                "JOIN model_versions v ON v.name = a.name AND v.version = a.version "
                "WHERE a.name = ? AND a.alias = ? AND v.status = 'READY'",
                (name, alias),
            ).fetchone()
        if row is None or not str(row[1]).startswith("file://"):
            return None
        model_dir = Path(str(row[1]).removeprefix("file://"))
        flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["python_function"]
        if not str(flavor.get("model_code_path", "")).endswith("pyfunc_model.py"):
            return None  # not this project's scoring model
        bundle_path = model_dir / flavor["artifacts"]["segment_bundle"]["path"]
        return _LocalChampion(str(row[0]), bundle_path) if bundle_path.is_file() else None
    except (sqlite3.Error, OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _mlflow_model(
    tracking_uri: str, name: str, alias: str, model_uri: str | None
) -> tuple[object, str, str]:
    """(pyfunc model, model URI, version) through MLflow's registry."""
    import mlflow

    # the installed packages, imported before the model prepends its code copy to sys.path: their
    # compiled kernels are cached, the copy's would be compiled afresh for every new model version
    import em_pipeline.lib.segments  # noqa: F401
    from em_pipeline.lib.mlflow_logging import mlflow_uris

    version = ""
    if model_uri is None:
        client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)
        try:
            mv = client.get_model_version_by_alias(name, alias)
        except mlflow.exceptions.MlflowException as e:
            raise LookupError(
                f"no model registered as {name}@{alias} in {tracking_uri}: "
                "run the nightly job (and let it promote a model) first"
            ) from e
        version = str(mv.version)
        model_uri = f"models:/{name}@{alias}"
    with warnings.catch_warnings(), mlflow_uris(tracking_uri):
        warnings.simplefilter("ignore", UserWarning)
        # suppress_warnings also skips comparing the model's pip requirements with every
        # installed distribution (seconds): the installed em_core/em_pipeline score it anyway
        model = mlflow.pyfunc.load_model(model_uri, suppress_warnings=True)
    return model, model_uri, version


def score_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    tracking_uri: str,
    registered_model_name: str = "customer-segments",
    alias: str = "champion",
    model_uri: str | None = None,
) -> ScoreResult:
    """Score a CSV/Parquet file of customers with the champion pyfunc model (see module doc)."""
    from em_pipeline.lib.segments import SegmentBundle
    from em_pipeline.lib.validation import read_drop_file, validate_drop

    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.suffix.lower() not in {".csv", ".parquet", ".pq"}:
        raise ValueError(f"--output must end in .csv or .parquet: {output_path}")
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    local = None if model_uri else _local_champion(tracking_uri, registered_model_name, alias)
    if local is not None:
        bundle = SegmentBundle.load(local.bundle_path)
        model_uri, version = f"models:/{registered_model_name}@{alias}", local.version
        predict = bundle.score
    else:
        model, model_uri, version = _mlflow_model(
            tracking_uri, registered_model_name, alias, model_uri
        )
        bundle = model.unwrap_python_model().bundle
        predict = model.predict
    schema = bundle.schema
    checked = validate_drop(
        [(input_path.name, read_drop_file(input_path))],
        schema,
        unknown_columns="ignore",
        duplicates="keep_first",
        outlier_robust_z=0,  # a batch's own median says nothing; max_value still applies
    )
    valid = checked.snapshot
    scored = predict(valid[schema.feature_names])
    out = pd.concat(
        [valid[[schema.id_column]].reset_index(drop=True), scored.reset_index(drop=True)], axis=1
    )
    out["model_uri"] = model_uri
    out["model_version"] = version
    out["scored_at"] = datetime.now(UTC).replace(tzinfo=None)
    _write(out, output_path)
    rejected = None
    if len(checked.quarantine):
        rejected = output_path.with_name(f"{output_path.stem}.rejected{output_path.suffix.lower()}")
        _write(checked.quarantine, rejected)
    counts = out["segment"].value_counts().sort_index()
    return ScoreResult(
        output=output_path,
        rejected=rejected,
        n_scored=len(out),
        n_rejected=len(checked.quarantine),
        model_uri=model_uri,
        model_version=version,
        segment_counts={int(k): int(v) for k, v in counts.items()},
    )
