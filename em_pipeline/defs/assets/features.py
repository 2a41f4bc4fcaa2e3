"""``customer_features``: standardised feature matrix (a power transform per feature with λ
estimated within a Gaussian mixture, or the schema's fixed transforms), NaN kept."""

import dagster as dg
import pandas as pd

from em_pipeline.defs.metadata import column_schema
from em_pipeline.defs.partitions import daily_partitions
from em_pipeline.defs.resources import CustomerSchemaResource, PipelineStorage
from em_pipeline.lib.artifacts import FEATURES, SNAPSHOT, TRANSFORM
from em_pipeline.lib.transforms import FeatureTransform


@dg.asset(
    partitions_def=daily_partitions,
    group_name="segmentation",
    kinds={"pandas", "parquet"},
    deps=["raw_customers"],
    description="z = (g(x) - mean) / std per feature, g = the schema's transform (by default a "
    "Box-Cox / signed Yeo-Johnson power transform with λ estimated within a Gaussian mixture; "
    "or λ by maximum likelihood on the feature alone; or log1p, log or the identity); mean/std "
    "over observed values; missing cells stay NaN.",
)
def customer_features(
    context: dg.AssetExecutionContext,
    customer_schema: CustomerSchemaResource,
    storage: PipelineStorage,
) -> dg.MaterializeResult:
    run_date = context.partition_key
    schema = customer_schema.get()
    snap = storage.read_parquet(run_date, SNAPSHOT)
    transform = FeatureTransform.fit(snap, schema)
    z = transform.transform(snap)
    out = pd.DataFrame(z, columns=schema.feature_names)
    out.insert(0, schema.id_column, snap[schema.id_column].to_numpy())
    path = storage.write_parquet(out, run_date, FEATURES)
    storage.write_json(transform.to_dict(), run_date, TRANSFORM)
    missing = {f: float(out[f].isna().mean()) for f in schema.feature_names}
    table = pd.DataFrame(
        {
            "feature": transform.features,
            "transform": transform.describe(),
            "center": transform.center,
            "scale": transform.scale,
            "missing_rate": [missing[f] for f in transform.features],
        }
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(out),
            "dagster/column_schema": column_schema(out),
            "path": dg.MetadataValue.path(str(path)),
            "transform": dg.MetadataValue.md(table.to_markdown(index=False)),
            **{f"missing_rate/{f}": v for f, v in missing.items()},
        }
    )
