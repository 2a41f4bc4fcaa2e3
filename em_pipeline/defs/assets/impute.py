"""``imputed_customers``: EM imputation (em_core) of the missing cells, with per-cell flags."""

import dagster as dg
import numpy as np
import pandas as pd

from em_pipeline.defs.config import ImputeConfig
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import ComputeBackend, CustomerSchemaResource, PipelineStorage
from em_pipeline.lib.artifacts import DRAWS, FEATURES, IMPUTED, TRANSFORM, imputed_flag
from em_pipeline.lib.transforms import FeatureTransform


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"pandas", "parquet"},
    deps=["customer_features"],
    description="Complete customer table in original units: each missing cell replaced by its "
    "conditional mean E[x_mis | x_obs] under an em_core Gaussian mixture fitted on the incomplete "
    "features (K chosen by BIC); <feature>_imputed flags mark the filled cells.",
)
def imputed_customers(
    context: dg.AssetExecutionContext,
    config: ImputeConfig,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
    compute: ComputeBackend,
) -> dg.MaterializeResult:
    from em_core import select_model

    run_date = context.partition_key
    schema = customer_schema.get()
    feats = schema.feature_names
    table = storage.read_parquet(run_date, FEATURES)
    transform = FeatureTransform.from_dict(storage.read_json(run_date, TRANSFORM))
    z = table[feats].to_numpy(dtype=float)
    mask = np.isnan(z)
    if config.k_max < config.k_min:
        raise dg.Failure(f"k_max ({config.k_max}) < k_min ({config.k_min})")
    ks = range(config.k_min, min(config.k_max, len(z)) + 1)
    context.log.info(
        f"fitting the imputation model: K in {list(ks)}, {config.covariance_type}, "
        f"{int(mask.sum())} missing cells"
    )
    res = select_model(
        z,
        n_components=ks,
        covariance_types=(config.covariance_type,),
        criterion="bic",
        n_init=config.n_init,
        random_state=config.seed,
        tol=config.tol,
        max_iter=config.max_iter,
        reg_covar=config.reg_covar,
        prior=None if config.prior == "none" else config.prior,
        n_jobs=compute.selection_n_jobs,  # the features are in memory: worker processes, no Dask
    )
    gm = res.best
    completed = transform.inverse(gm.impute(z))
    out = pd.DataFrame(completed, columns=feats)
    out.insert(0, schema.id_column, table[schema.id_column].to_numpy())
    for j, f in enumerate(feats):
        out[imputed_flag(f)] = mask[:, j]
    path = storage.write_parquet(out, run_date, IMPUTED)
    metadata: dict = {}
    if config.n_draws:
        draws = transform.inverse(gm.impute(z, n_draws=config.n_draws, random_state=config.seed))
        long = pd.concat(
            [
                pd.DataFrame(draws[m], columns=feats).assign(
                    draw=m, **{schema.id_column: table[schema.id_column].to_numpy()}
                )
                for m in range(config.n_draws)
            ],
            ignore_index=True,
        )
        metadata["draws_path"] = dg.MetadataValue.path(
            str(storage.write_parquet(long, run_date, DRAWS))
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(out),
            "path": dg.MetadataValue.path(str(path)),
            "n_imputed_cells": int(mask.sum()),
            "rows_with_imputation": int(mask.any(axis=1).sum()),
            **{f"missing_rate/{f}": float(mask[:, j].mean()) for j, f in enumerate(feats)},
            "imputation_model": f"K={gm.n_components} {gm.covariance_type}",
            **metadata,
        }
    )
