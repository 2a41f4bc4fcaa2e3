"""The work of ``segment_model`` as plain functions (no Dagster): the model's inputs in the right
feature space, the model-selection sweep and its table, and the MLflow record of the night.

With a champion (the model behind the published tables) tonight's model is fitted in the
**champion's feature space** (its transform, not tonight's), so the two models' parameters are
directly comparable: the champion warm-starts the candidate with its (K, covariance type) and
tonight's components are aligned to its for stable segment ids. The fit runs on the features
*with* their NaN cells: em_core marginalises the missing (the imputed) cells.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from em_core.dequantize import Lattice
from em_pipeline.lib.artifacts import imputed_flag
from em_pipeline.lib.dequantised import dequantised_features, fit_lattices
from em_pipeline.lib.plots import (
    TOP_CANDIDATES,
    CandidateCurves,
    plot_candidates,
    plot_criterion_vs_k,
    plot_restarts,
)
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.transforms import FeatureTransform

#: Selection-table columns shown in the asset's metadata.
SHOWN_COLUMNS = [
    "n_components", "covariance_type", "log_likelihood", "bic", "aic", "icl", "n_iter",
    "converged", "degenerate", "smallest_class", "eligible", "warm_start", "best_init", "chosen",
]  # fmt: skip


class InputMismatch(ValueError):
    """The upstream tables of a run date disagree with each other or with the champion."""


@dataclass(frozen=True)
class ModelInputs:
    """The recorded features (NaN = missing), the matrix the sweep fits (the same, or its
    dequantised version: :mod:`em_pipeline.lib.dequantised`), the transform and a log line."""

    X: np.ndarray
    X_fit: np.ndarray
    transform: FeatureTransform
    note: str
    lattices: dict[str, Lattice] | None = None  # None: not dequantised

    def describe_lattices(self) -> dict[str, str]:
        """Per feature, how its values were dequantised (empty when they were not)."""
        if self.lattices is None:
            return {}
        return {name: lattice.describe() for name, lattice in self.lattices.items()}


def model_inputs(
    schema: CustomerSchema,
    features: pd.DataFrame,
    imputed: pd.DataFrame,
    snapshot: pd.DataFrame,
    transform_doc: dict,
    champion: Any | None,
    dequantize_seed: int | None = None,
) -> ModelInputs:
    """Tonight's features, in the champion's feature space when there is one; with
    ``dequantize_seed``, the sweep fits them dequantised (seeded by customer id and feature)."""
    feats, idc = schema.feature_names, schema.id_column
    if champion is None:
        transform = FeatureTransform.from_dict(transform_doc)
        X = features[feats].to_numpy(dtype=float)
        note = "no champion in the warehouse: first model, segment ids by spend order"
    else:
        if champion.bundle.schema.feature_names != feats:
            raise InputMismatch(
                f"the champion ({champion.run_date}) uses features "
                f"{champion.bundle.schema.feature_names}, the schema now {feats}: a new feature "
                "set needs a fresh warehouse (no champion)"
            )
        if not snapshot[idc].equals(features[idc]):
            raise InputMismatch("customer_features does not match raw_customers: re-run upstream")
        transform = champion.bundle.transform
        X = transform.transform(snapshot)
        note = (
            f"champion: run date {champion.run_date}, model version "
            f"{champion.model_version or '?'}, K={champion.bundle.n_segments} "
            f"{champion.bundle.model.covariance_type}, segment ids "
            f"{champion.bundle.segment_ids}; fitting in its feature space"
        )
    flags = imputed[[imputed_flag(f) for f in feats]].to_numpy(dtype=bool)
    if not np.array_equal(flags, np.isnan(X)) or not features[idc].equals(imputed[idc]):
        raise InputMismatch("imputed_customers does not match customer_features: re-run upstream")
    if dequantize_seed is None:
        return ModelInputs(X, X, transform, note)
    lattices = fit_lattices(snapshot, schema)
    X_fit = dequantised_features(snapshot, schema, transform, lattices, dequantize_seed)
    return ModelInputs(X, X_fit, transform, note, lattices)


@dataclass(frozen=True)
class SweepSettings:
    """The sweep's em_core arguments, from the asset's config (any object with its fields)."""

    n_components: tuple[int, ...]
    covariance_types: tuple[str, ...]
    criterion: str
    n_init: int
    seed: int
    tol: float
    max_iter: int
    reg_covar: float
    init: str
    prior: str
    min_class_size: int
    n_screen: int = 1
    acceleration: str = "squarem"
    k_limit: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> SweepSettings:
        if config.k_max < config.k_min:
            raise ValueError(f"k_max ({config.k_max}) < k_min ({config.k_min})")
        return cls(
            tuple(range(config.k_min, config.k_max + 1)),
            tuple(dict.fromkeys(config.covariance_types)),
            config.criterion, config.n_init, config.seed, config.tol, config.max_iter,
            config.reg_covar, config.init, config.prior, config.min_class_size, config.n_screen,
            config.acceleration, config.k_limit if config.segments == "merged" else None,
        )  # fmt: skip

    def fit_params(self) -> dict[str, Any]:
        """What each candidate's MLflow run records as params."""
        return {
            "tol": self.tol, "max_iter": self.max_iter, "reg_covar": self.reg_covar,
            "n_init": self.n_init, "init": self.init, "prior": self.prior, "seed": self.seed,
            "criterion": self.criterion, "min_class_size": self.min_class_size,
            "n_screen": self.n_screen, "acceleration": self.acceleration,
            "k_limit": self.k_limit,
        }  # fmt: skip

    def describe(self, X: np.ndarray, where: str, run_id: str) -> str:
        ks, covs = self.n_components, self.covariance_types
        more = (
            ""
            if self.k_limit is None
            else f" (the chosen type up to K={self.k_limit} while BIC chooses the top)"
        )
        return (
            f"model selection: K in {ks[0]}..{ks[-1]} x {list(covs)} = {len(ks) * len(covs)} "
            f"candidates{more}, {self.n_init} restart(s) each, on {X.shape[0]} customers x "
            f"{X.shape[1]} features ({int(np.isnan(X).sum())} missing cells marginalised) on "
            f"{where}; MLflow run {run_id}"
        )

    def run(
        self, data: Any, warm: Any | None, n_jobs: int, callback: Callable[[dict], None]
    ) -> SweepOutcome:
        from em_core import select_model

        result = select_model(
            data, n_components=self.n_components, covariance_types=self.covariance_types,
            criterion=self.criterion, n_init=self.n_init, random_state=self.seed,
            callback=callback, tol=self.tol, max_iter=self.max_iter, reg_covar=self.reg_covar,
            init=self.init, prior=None if self.prior == "none" else self.prior,
            warm_start=warm, n_jobs=n_jobs, min_class_size=self.min_class_size,
            n_screen=self.n_screen, k_limit=self.k_limit,
            acceleration=None if self.acceleration == "none" else self.acceleration,
        )  # fmt: skip
        return SweepOutcome.of(result)


def candidate_line(row: dict, criterion: str) -> str:
    """The progress line of one finished candidate."""
    crit = row.get(criterion)
    crit_s = f"{crit:.1f}" if isinstance(crit, int | float) else "n/a"
    status = row.get("failure") or ("ok" if row.get("eligible", True) else "passed over")
    if row.get("reason") and status != "ok":
        status += f": {row['reason'][:160]}"
    seconds = row.get("seconds") or 0.0
    return (
        f"[{row['index'] + 1}/{row['total']}] K={row['n_components']} "
        f"{row['covariance_type']}: {criterion}={crit_s} {status} ({seconds:.1f}s)"
    )


def selection_frame(table: list[dict], chosen: tuple[int, str]) -> pd.DataFrame:
    """The selection table as written to ``selection.parquet`` (typed, one ``chosen`` row)."""
    df = pd.DataFrame(table)
    df["chosen"] = [
        (k, c) == chosen for k, c in zip(df["n_components"], df["covariance_type"], strict=True)
    ]
    for col in ("log_likelihood", "bic", "aic", "icl", "seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("error", "failure", "reason", "best_init"):
        if col not in df.columns:
            df[col] = None
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["smallest_class"] = pd.to_numeric(df.get("smallest_class"), errors="coerce").astype("Int64")
    for col in ("eligible", "warm_start", "continued"):
        df[col] = df[col].fillna(False).astype(bool) if col in df.columns else col == "eligible"
    return df


@dataclass(frozen=True)
class SweepOutcome:
    """The sweep's result with its typed table and the chosen candidate."""

    result: Any  # em_core.SelectionResult
    table: pd.DataFrame
    chosen: tuple[int, str]

    @classmethod
    def of(cls, result: Any) -> SweepOutcome:
        chosen = (int(result.best.n_components), str(result.best.covariance_type))
        return cls(result, selection_frame(result.table, chosen), chosen)

    @property
    def chosen_row(self) -> pd.Series:
        return self.table[self.table["chosen"]].iloc[0]

    @property
    def chosen_init(self) -> str:
        return str(self.chosen_row["best_init"])

    @property
    def warm_summary(self) -> str:
        warm = self.table[self.table["warm_start"]]
        if warm.empty:
            return "no warm start"
        return (
            f"warm start on K={warm['n_components'].iloc[0]} {warm['covariance_type'].iloc[0]}: "
            f"kept restart started from {warm['best_init'].iloc[0]}"
        )

    @property
    def n_failed(self) -> int:
        return int((self.table["degenerate"].astype(bool) | self.table["error"].notna()).sum())

    def log_candidates(self, tracker: Any, parent: str, fit_params: dict[str, Any]) -> None:
        """One MLflow child run per candidate with every restart's curve."""
        for row in self.result.table:
            key = (row["n_components"], row["covariance_type"])
            model = self.result.models.get(key)
            history = None if model is None else model.history_
            tracker.log_candidate(parent, row, history, fit_params, chosen=key == self.chosen)

    def log_plots(self, tracker: Any, parent: str, criterion: str, folder: Path) -> list[Path]:
        """Criterion vs K, the chosen model's restarts and every candidate's kept restart, written
        to ``folder`` and logged to MLflow; returns the PNG paths."""
        k, cov = self.chosen
        scores = {
            (r["n_components"], r["covariance_type"]): r.get(criterion) for r in self.result.table
        }
        candidates = [
            _curves(f"K={kk} {c}", m, scores.get((kk, c)))
            for (kk, c), m in self.result.models.items()
            if m is not None
        ]
        folder.mkdir(parents=True, exist_ok=True)
        plots = [
            plot_criterion_vs_k(self.table, folder / f"{criterion}_vs_k.png", criterion),
            plot_restarts(
                _curves(f"K={k} {cov}", self.result.best, scores.get(self.chosen)),
                folder / "loglik_chosen_restarts.png",
                f"Chosen model K={k} {cov}: every restart",
            ),
            plot_candidates(
                candidates, folder / "loglik_all_candidates.png",
                f"Kept restart of every candidate (best {TOP_CANDIDATES} by "
                f"{criterion.upper()} in colour)",
            ),
        ]  # fmt: skip
        tracker.log_artifacts(parent, plots, "plots")
        return plots


def _curves(name: str, model: Any, score: Any) -> CandidateCurves:
    return CandidateCurves(
        name=name,
        restarts=model.history_,
        inits=[str(r.get("init", "")) for r in getattr(model, "restarts_", [])],
        score=float("nan") if score is None else float(score),
        kept=model.best_restart_,
    )


def parent_summary(
    settings: SweepSettings,
    outcome: SweepOutcome,
    inputs: ModelInputs,
    assignment: Any,
    bundle: Any,
    champion: Any | None,
    version: str | None,
    digest: str,
) -> dict[str, dict[str, Any]]:
    """params, metrics and tags of the night's parent MLflow run."""
    ks, row, X = settings.n_components, outcome.chosen_row, inputs.X
    transform = inputs.transform
    params = {
        "k_range": f"{ks[0]}..{ks[-1]}",
        "covariance_types": ",".join(settings.covariance_types),
        **settings.fit_params(),
        **{
            f"transform/{name}": how
            for name, how in zip(transform.features, transform.describe(), strict=True)
        },
        "dequantize": inputs.lattices is not None,
        **{f"dequantize/{name}": how for name, how in inputs.describe_lattices().items()},
    }
    metrics = {
        "chosen_n_components": outcome.chosen[0],
        **{key: row[key] for key in ("log_likelihood", "bic", "aic", "icl", "n_iter")},
        "converged": float(bool(row["converged"])),
        "n_customers": X.shape[0],
        "n_missing_cells": int(np.isnan(X).sum()),
        "warm_start_won": float(outcome.chosen_init == "warm"),
        "n_new_segments": len(assignment.new_ids),
        "n_retired_segments": len(assignment.retired_ids),
    }
    tags = {
        "chosen_covariance_type": outcome.chosen[1],
        "chosen_best_init": outcome.chosen_init,
        "warm_start": outcome.warm_summary,
        "champion_run_date": "" if champion is None else champion.run_date,
        "champion_model_version": "" if champion is None else champion.model_version,
        "segment_ids": ",".join(map(str, bundle.segment_ids)),
        "new_segment_ids": ",".join(map(str, assignment.new_ids)),
        "retired_segment_ids": ",".join(map(str, assignment.retired_ids)),
        "model_version": version or "",
        "data_digest": digest,
        # published_segments sets "true" when the drift checks pass and it promotes the model
        "promoted": "false",
    }
    return {"params": params, "metrics": metrics, "tags": tags}


def bundle_info(
    run_date: str,
    dagster_run_id: str,
    mlflow_run_id: str,
    digest: str,
    settings: SweepSettings,
    inputs: ModelInputs,
    champion: Any | None,
    warm_started: bool,
    outcome: SweepOutcome,
    assignment: Any,
) -> dict[str, Any]:
    """The lineage stored with the model JSON (``SegmentBundle.info``)."""
    return {
        "run_date": run_date,
        "dagster_run_id": dagster_run_id,
        "mlflow_run_id": mlflow_run_id,
        "em_core_version": _em_core_version(),
        "data_digest": digest,
        "criterion": settings.criterion,
        "n_customers": int(inputs.X.shape[0]),
        "champion_run_date": None if champion is None else champion.run_date,
        "champion_model_version": None if champion is None else champion.model_version,
        "warm_start": warm_started,
        "best_init": outcome.chosen_init,
        "dequantized": None
        if inputs.lattices is None
        else {name: lattice.to_dict() for name, lattice in inputs.lattices.items()},
        "new_segment_ids": assignment.new_ids,
        "retired_segment_ids": assignment.retired_ids,
    }


def _em_core_version() -> str:
    import em_core

    return em_core.__version__


def merged_assignment(
    model: Any, inputs: ModelInputs, snapshot: pd.DataFrame, champion: Any | None,
    schema: CustomerSchema, run_date: str, *, min_share: float = 0.0,
) -> tuple[Any, Any, pd.DataFrame]:  # fmt: skip
    """Merge tonight's components into segments (DEMP, :mod:`em_core.merging`, on the posteriors
    of the data the mixture was fitted to; groups below ``min_share`` merged first) and give them
    stable ids against the champion's segments from the posteriors of the recorded values; also
    the merge path as a table."""
    from em_core.merging import merge_components
    from em_pipeline.lib.stable_ids import assign_merged_segment_ids

    resp = model.predict_proba(inputs.X)
    fitted = resp if inputs.X_fit is inputs.X else model.predict_proba(inputs.X_fit)
    merged = merge_components(fitted, min_share=min_share)
    champion_posteriors = None if champion is None else champion.bundle.probabilities(snapshot)
    assignment = assign_merged_segment_ids(
        model, merged.component_segment, merged.posteriors(resp),
        None if champion is None else champion.bundle, champion_posteriors, schema, run_date,
        registry=None if champion is None else champion.registry,
    )  # fmt: skip
    rows = [{"n_segments": model.n_components, "kept": None, "absorbed": None, "value": None,
             "entropy": merged.entropies[-1], "forced": False}]  # fmt: skip
    rows += [vars(step) for step in merged.path]
    table = pd.DataFrame(rows).astype({"value": "float64", "entropy": "float64"})
    table["chosen"] = table["n_segments"] == merged.n_segments
    return assignment, merged, table


def log_merge_path(tracker: Any, parent: str, table: pd.DataFrame) -> None:
    """The merge path's table and plot on the night's MLflow run."""
    from em_pipeline.lib.plots import plot_merge_path

    chosen = int(table.loc[table["chosen"], "n_segments"].iloc[0])
    tracker.log_table(parent, table, "merge_path", "segments")
    with tempfile.TemporaryDirectory() as tmp:
        plot = plot_merge_path(table, chosen, Path(tmp) / "merge_path.png")
        tracker.log_artifacts(parent, [plot], "plots")
