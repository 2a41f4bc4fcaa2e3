"""``segment_model``: model selection over K x covariance type with em_core, logged to MLflow.

The fit runs on the features *with* their NaN cells: em_core marginalises the missing (the
imputed) cells in the likelihood instead of treating the imputed values as observed.

With a champion (the model behind the published tables, read from the warehouse), tonight's model
is fitted in the **champion's feature space** (its log1p + standardisation, not tonight's), so the
two models' parameters are directly comparable: the champion's parameters warm-start the
candidate with its (K, covariance type), tonight's components are aligned to the champion's for
stable segment ids, and component distances are meaningful. The feature space is thus fixed by the
first champion and inherited by every promoted refit (EM is unaffected by the affine
standardisation; only the starting points and the scale of ``reg_covar`` depend on it).
"""

import tempfile
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd

import em_pipeline
from em_pipeline.defs.config import SegmentModelConfig
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import (
    ComputeBackend,
    CustomerSchemaResource,
    MlflowTracker,
    PipelineStorage,
    Warehouse,
)
from em_pipeline.lib.artifacts import (
    ALIGNMENT,
    FEATURES,
    IMPUTED,
    MODEL_JSON,
    REGISTRY,
    SELECTION,
    SNAPSHOT,
    TRANSFORM,
    imputed_flag,
)
from em_pipeline.lib.plots import plot_criterion_vs_k, plot_loglik_curves
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.stable_ids import assign_segment_ids
from em_pipeline.lib.transforms import FeatureTransform


def job_asset_keys(context: dg.AssetExecutionContext) -> str:
    """The asset keys of the running job, from its definitions (comma-separated, sorted)."""
    keys = context.job_def.asset_layer.executable_asset_keys
    return ",".join(sorted(key.to_user_string() for key in keys))


def selection_frame(table: list[dict], chosen: tuple[int, str]) -> pd.DataFrame:
    df = pd.DataFrame(table)
    df["chosen"] = [
        (k, c) == chosen for k, c in zip(df["n_components"], df["covariance_type"], strict=True)
    ]
    for col in ("log_likelihood", "bic", "aic", "icl", "seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("error", "failure", "reason"):
        if col not in df.columns:
            df[col] = None
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["smallest_class"] = pd.to_numeric(df.get("smallest_class"), errors="coerce").astype("Int64")
    df["eligible"] = df.get("eligible", True)
    df["eligible"] = df["eligible"].fillna(False).astype(bool)
    if "best_init" not in df.columns:  # an em_core without warm starts
        df["best_init"] = None
    df["best_init"] = df["best_init"].astype(object).where(df["best_init"].notna(), None)
    df["warm_start"] = df.get("warm_start", False)
    df["warm_start"] = df["warm_start"].fillna(False).astype(bool)
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
    "em_core on the incomplete features (missing cells marginalised), warm-started from the "
    "champion and aligned to it for stable segment ids (new ids for new segments, retired ones "
    "recorded). Stored as JSON; every candidate's restart curves, the plots and the registered "
    "pyfunc model go to MLflow (the alias moves only when published_segments promotes it).",
)
def segment_model(
    context: dg.AssetExecutionContext,
    config: SegmentModelConfig,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
    mlflow_tracker: MlflowTracker,
    warehouse: Warehouse,
    compute: ComputeBackend,
) -> dg.MaterializeResult:
    import em_core
    from em_core import select_model

    run_date = context.partition_key
    schema = customer_schema.get()
    feats = schema.feature_names
    table = storage.read_parquet(run_date, FEATURES)
    imputed = storage.read_parquet(run_date, IMPUTED)
    champion = warehouse.load_champion()
    if champion is None:
        transform = FeatureTransform.from_dict(storage.read_json(run_date, TRANSFORM))
        X = table[feats].to_numpy(dtype=float)
        context.log.info("no champion in the warehouse: first model, segment ids by spend order")
    else:
        if champion.bundle.schema.feature_names != feats:
            raise dg.Failure(
                f"the champion ({champion.run_date}) uses features "
                f"{champion.bundle.schema.feature_names}, the schema now {feats}: a new feature "
                "set needs a fresh warehouse (no champion)"
            )
        snap = storage.read_parquet(run_date, SNAPSHOT)
        if not snap[schema.id_column].equals(table[schema.id_column]):
            raise dg.Failure("customer_features does not match raw_customers: re-run upstream")
        transform = champion.bundle.transform
        X = transform.transform(snap)
        context.log.info(
            f"champion: run date {champion.run_date}, model version "
            f"{champion.model_version or '?'}, K={champion.bundle.n_segments} "
            f"{champion.bundle.model.covariance_type}, segment ids "
            f"{champion.bundle.segment_ids}; fitting in its feature space"
        )
    warm = champion.bundle.model if champion is not None and config.warm_start else None
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
        "prior": config.prior,
        "seed": config.seed,
        "criterion": config.criterion,
        "min_class_size": config.min_class_size,
    }
    tracker = mlflow_tracker.tracker()
    parent = tracker.start_parent_run(
        run_date,
        context.run.run_id,
        {
            "dagster_job": context.job_name,
            "dagster_asset_keys": job_asset_keys(context),
            "em_core_version": em_core.__version__,
            "source_snapshot": str(storage.path(run_date, SNAPSHOT)),
        },
    )
    with tracker.failing_with(parent):
        run_url = tracker.run_url(parent)
        context.log.info(
            f"model selection: K in {ks[0]}..{ks[-1]} x {list(covs)} = {len(ks) * len(covs)} "
            f"candidates, {config.n_init} restart(s) each, on {X.shape[0]} customers x "
            f"{X.shape[1]} features ({int(np.isnan(X).sum())} missing cells marginalised) on "
            f"{compute.name}; MLflow run {parent}"
        )

        def progress(row: dict) -> None:
            crit = row.get(config.criterion)
            crit_s = f"{crit:.1f}" if isinstance(crit, int | float) else "n/a"
            status = row.get("failure") or ("ok" if row.get("eligible", True) else "passed over")
            if row.get("reason") and status != "ok":
                status += f": {row['reason'][:160]}"
            seconds = row.get("seconds") or 0.0
            context.log.info(
                f"[{row['index'] + 1}/{row['total']}] K={row['n_components']} "
                f"{row['covariance_type']}: {config.criterion}={crit_s} {status} ({seconds:.1f}s)"
            )

        try:
            with compute.data(X) as data:
                res = select_model(
                    data,
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
                    prior=None if config.prior == "none" else config.prior,
                    warm_start=warm,
                    n_jobs=compute.selection_n_jobs,
                    min_class_size=config.min_class_size,
                )
        except ValueError as e:
            raise dg.Failure(f"model selection failed for {run_date}: {e}") from e

        best = res.best
        chosen = (int(best.n_components), str(best.covariance_type))
        sel = selection_frame(res.table, chosen)
        storage.write_parquet(sel, run_date, SELECTION)
        chosen_init = sel.loc[sel["chosen"], "best_init"].iloc[0]
        warm_row = sel[sel["warm_start"]]
        warm_summary = (
            "no warm start"
            if warm_row.empty
            else f"warm start on K={warm_row['n_components'].iloc[0]} "
            f"{warm_row['covariance_type'].iloc[0]}: kept restart started from "
            f"{warm_row['best_init'].iloc[0]}"
        )
        context.log.info(f"chosen K={chosen[0]} {chosen[1]} (start: {chosen_init}); {warm_summary}")
        assignment = assign_segment_ids(
            best,
            None if champion is None else champion.bundle,
            schema,
            run_date,
            registry=None if champion is None else champion.registry,
            max_match_distance=config.max_match_distance,
        )
        storage.write_parquet(assignment.alignment, run_date, ALIGNMENT)
        storage.write_parquet(assignment.registry, run_date, REGISTRY)
        context.log.info(
            f"segment ids {sorted(assignment.component_to_segment)}; new {assignment.new_ids}, "
            f"retired {assignment.retired_ids}"
        )
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
            component_to_segment=assignment.component_to_segment,
            labels=assignment.labels,
            info={
                "run_date": run_date,
                "dagster_run_id": context.run.run_id,
                "mlflow_run_id": parent,
                "em_core_version": em_core.__version__,
                "data_digest": digest,
                "criterion": config.criterion,
                "n_customers": int(X.shape[0]),
                "champion_run_date": None if champion is None else champion.run_date,
                "champion_model_version": None if champion is None else champion.model_version,
                "warm_start": warm is not None,
                "best_init": chosen_init,
                "new_segment_ids": assignment.new_ids,
                "retired_segment_ids": assignment.retired_ids,
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
        tracker.log_table(parent, assignment.alignment, "segment_alignment", "segments")
        tracker.log_table(parent, assignment.registry, "segment_registry_proposed", "segments")
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
                **{
                    f"transform/{name}": how
                    for name, how in zip(transform.features, transform.describe(), strict=True)
                },
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
                "warm_start_won": float(chosen_init == "warm"),
                "n_new_segments": len(assignment.new_ids),
                "n_retired_segments": len(assignment.retired_ids),
            },
            tags={
                "chosen_covariance_type": chosen[1],
                "chosen_best_init": str(chosen_init),
                "warm_start": warm_summary,
                "champion_run_date": "" if champion is None else champion.run_date,
                "champion_model_version": "" if champion is None else champion.model_version,
                "segment_ids": ",".join(map(str, bundle.segment_ids)),
                "new_segment_ids": ",".join(map(str, assignment.new_ids)),
                "retired_segment_ids": ",".join(map(str, assignment.retired_ids)),
                "model_version": version or "",
                "data_digest": digest,
                # published_segments sets "true" when the drift checks pass and it promotes
                "promoted": "false",
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
            "smallest_class",
            "eligible",
            "warm_start",
            "best_init",
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
            "segment_labels": dg.MetadataValue.json(
                {str(k): v for k, v in sorted(bundle.labels.items())}
            ),
            "chosen_best_init": str(chosen_init),
            "warm_start": warm_summary,
            "champion_run_date": "" if champion is None else champion.run_date,
            "segment_alignment": dg.MetadataValue.md(assignment.alignment.to_markdown(index=False)),
            "new_segment_ids": dg.MetadataValue.json(assignment.new_ids),
            "retired_segment_ids": dg.MetadataValue.json(assignment.retired_ids),
            "mlflow_run_id": parent,
            "mlflow_run_url": dg.MetadataValue.url(run_url) if run_url else "",
            "mlflow_model_uri": model_uri,
            "registered_model_version": version or "",
            "data_digest": digest,
            "em_core_version": em_core.__version__,
        }
    )
