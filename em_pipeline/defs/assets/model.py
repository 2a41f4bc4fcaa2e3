"""``segment_model``: model selection over K x covariance type with em_core, logged to MLflow.

The fit runs on ``customer_features`` *with* its NaN cells: em_core marginalises the missing (the
imputed) cells in the likelihood instead of treating the imputed values as observed.
"""

import tempfile
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd

import em_pipeline
from em_pipeline.defs.assets.features import FEATURES, TRANSFORM
from em_pipeline.defs.assets.impute import IMPUTED, imputed_flag
from em_pipeline.defs.assets.ingest import SNAPSHOT
from em_pipeline.defs.config import SegmentModelConfig
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import CustomerSchemaResource, MlflowTracker, PipelineStorage
from em_pipeline.lib.plots import plot_criterion_vs_k, plot_loglik_curves
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.transforms import FeatureTransform

MODEL_JSON = "segment_model.json"
SELECTION = "selection.parquet"
ASSET_KEYS = (
    "raw_customers,customer_features,imputed_customers,segment_model,"
    "customer_segments,segment_profiles,published_segments"
)


def selection_frame(table: list[dict], chosen: tuple[int, str]) -> pd.DataFrame:
    df = pd.DataFrame(table)
    df["chosen"] = [
        (k, c) == chosen for k, c in zip(df["n_components"], df["covariance_type"], strict=True)
    ]
    for col in ("log_likelihood", "bic", "aic", "icl", "seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return df


def code_paths() -> list[str]:
    import em_core

    return [str(Path(em_core.__file__).parent), str(Path(em_pipeline.__file__).parent)]


def pip_requirements() -> list[str]:
    import numpy
    import scipy

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={numpy.__version__}",
        f"scipy=={scipy.__version__}",
        f"pandas=={pd.__version__}",
    ]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"python", "mlflow"},
    deps=["customer_features", "imputed_customers"],
    description="Gaussian mixture chosen by BIC (default) over K and covariance types, fitted by "
    "em_core on the incomplete features (missing cells marginalised). Stored as JSON; every "
    "candidate's restart curves, the plots and the registered pyfunc model go to MLflow.",
)
def segment_model(
    context: dg.AssetExecutionContext,
    config: SegmentModelConfig,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
) -> dg.MaterializeResult:
    import em_core
    from em_core import select_model

    run_date = context.partition_key
    schema = customer_schema.get()
    feats = schema.feature_names
    table = storage.read_parquet(run_date, FEATURES)
    transform = FeatureTransform.from_dict(storage.read_json(run_date, TRANSFORM))
    imputed = storage.read_parquet(run_date, IMPUTED)
    X = table[feats].to_numpy(dtype=float)
    flags = imputed[[imputed_flag(f) for f in feats]].to_numpy(dtype=bool)
    if not np.array_equal(flags, np.isnan(X)) or not table[schema.id_column].equals(
        imputed[schema.id_column]
    ):
        raise dg.Failure("imputed_customers does not match customer_features: re-run upstream")
    if config.k_max < config.k_min:
        raise dg.Failure(f"k_max ({config.k_max}) < k_min ({config.k_min})")
    ks = list(range(config.k_min, config.k_max + 1))
    covs = tuple(dict.fromkeys(config.covariance_types))
    fit_params = {
        "tol": config.tol,
        "max_iter": config.max_iter,
        "reg_covar": config.reg_covar,
        "n_init": config.n_init,
        "init": config.init,
        "seed": config.seed,
        "criterion": config.criterion,
    }
    tracker = mlflow_tracker.tracker()
    parent = tracker.start_parent_run(
        run_date,
        context.run.run_id,
        {
            "dagster_job": context.job_name,
            "dagster_asset_keys": ASSET_KEYS,
            "em_core_version": em_core.__version__,
            "source_snapshot": str(storage.path(run_date, SNAPSHOT)),
        },
    )
    run_url = tracker.run_url(parent)
    context.log.info(
        f"model selection: K in {ks[0]}..{ks[-1]} x {list(covs)} = {len(ks) * len(covs)} "
        f"candidates, {config.n_init} restart(s) each, on {X.shape[0]} customers x {X.shape[1]} "
        f"features ({int(np.isnan(X).sum())} missing cells marginalised); MLflow run {parent}"
    )

    def progress(row: dict) -> None:
        crit = row.get(config.criterion)
        crit_s = f"{crit:.1f}" if isinstance(crit, int | float) else "n/a"
        status = "degenerate" if row.get("degenerate") else ("failed" if row.get("error") else "ok")
        seconds = row.get("seconds") or 0.0
        context.log.info(
            f"[{row['index'] + 1}/{row['total']}] K={row['n_components']} "
            f"{row['covariance_type']}: {config.criterion}={crit_s} {status} ({seconds:.1f}s)"
        )

    try:
        res = select_model(
            X,
            n_components=ks,
            covariance_types=covs,
            criterion=config.criterion,
            n_init=config.n_init,
            random_state=config.seed,
            callback=progress,
            tol=config.tol,
            max_iter=config.max_iter,
            reg_covar=config.reg_covar,
            init=config.init,
        )
    except ValueError as e:
        tracker.finish(parent, "FAILED")
        raise dg.Failure(f"model selection failed for {run_date}: {e}") from e

    best = res.best
    chosen = (int(best.n_components), str(best.covariance_type))
    sel = selection_frame(res.table, chosen)
    storage.write_parquet(sel, run_date, SELECTION)
    for row in res.table:
        key = (row["n_components"], row["covariance_type"])
        model = res.models.get(key)
        tracker.log_candidate(
            parent,
            row,
            None if model is None else model.history_,
            fit_params,
            chosen=key == chosen,
        )

    snapshot = storage.read_parquet(run_date, SNAPSHOT)
    digest = tracker.log_dataset(
        parent, snapshot, source=str(storage.path(run_date, SNAPSHOT)), name="raw_customers"
    )
    chosen_row = sel[sel["chosen"]].iloc[0]
    bundle = SegmentBundle.build(
        best,
        schema,
        transform,
        info={
            "run_date": run_date,
            "dagster_run_id": context.run.run_id,
            "mlflow_run_id": parent,
            "em_core_version": em_core.__version__,
            "data_digest": digest,
            "criterion": config.criterion,
            "n_customers": int(X.shape[0]),
        },
    )
    model_path = bundle.save(storage.path(run_date, MODEL_JSON))

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        plots = [
            plot_criterion_vs_k(sel, tmpd / f"{config.criterion}_vs_k.png", config.criterion),
            plot_loglik_curves(
                {f"K={chosen[0]} {chosen[1]}": best.history_},
                tmpd / "loglik_chosen_restarts.png",
                f"Chosen model K={chosen[0]} {chosen[1]}: every restart",
            ),
            plot_loglik_curves(
                {
                    f"K={k} {c}": [m.history_[m.best_restart_]]
                    for (k, c), m in res.models.items()
                    if m is not None
                },
                tmpd / "loglik_all_candidates.png",
                "Kept restart of every candidate",
            ),
        ]
        tracker.log_artifacts(parent, plots, "plots")
    tracker.log_table(parent, sel, "selection_table", "selection")
    tracker.log_artifacts(parent, [model_path], "model_json")
    example_in = snapshot[feats].head(20)
    model_uri, version = tracker.log_pyfunc_model(
        parent,
        model_path,
        example_in,
        bundle.score(example_in),
        code_paths(),
        pip_requirements(),
    )
    tracker.log_parent_summary(
        parent,
        params={
            "k_range": f"{ks[0]}..{ks[-1]}",
            "covariance_types": ",".join(covs),
            **fit_params,
        },
        metrics={
            "chosen_n_components": chosen[0],
            "log_likelihood": chosen_row["log_likelihood"],
            "bic": chosen_row["bic"],
            "aic": chosen_row["aic"],
            "icl": chosen_row["icl"],
            "n_iter": chosen_row["n_iter"],
            "converged": float(bool(chosen_row["converged"])),
            "n_customers": X.shape[0],
            "n_missing_cells": int(np.isnan(X).sum()),
        },
        tags={
            "chosen_covariance_type": chosen[1],
            "model_version": version or "",
            "data_digest": digest,
        },
    )
    tracker.finish(parent)
    bundle.info.update({"model_uri": model_uri, "model_version": version})
    bundle.save(model_path)

    shown = sel[
        [
            "n_components",
            "covariance_type",
            "log_likelihood",
            "bic",
            "aic",
            "icl",
            "n_iter",
            "converged",
            "degenerate",
            "chosen",
        ]
    ]
    n_failed = int((sel["degenerate"].astype(bool) | sel["error"].notna()).sum())
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(model_path)),
            "chosen_n_components": chosen[0],
            "chosen_covariance_type": chosen[1],
            "criterion": config.criterion,
            f"chosen_{config.criterion}": float(chosen_row[config.criterion]),
            "n_candidates": len(sel),
            "n_failed_candidates": n_failed,
            "selection_table": dg.MetadataValue.md(shown.to_markdown(index=False)),
            "segment_labels": dg.MetadataValue.json(bundle.labels),
            "mlflow_run_id": parent,
            "mlflow_run_url": dg.MetadataValue.url(run_url) if run_url else "",
            "mlflow_model_uri": model_uri,
            "registered_model_version": version or "",
            "data_digest": digest,
            "em_core_version": em_core.__version__,
        }
    )
