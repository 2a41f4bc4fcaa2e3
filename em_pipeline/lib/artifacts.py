"""The artifact contract: every file an asset writes under ``<home>/runs/<run_date>/``.

Assets, checks and the CLI name a partition's files through these constants only, so no asset
module imports another to learn a file name. Each name is written by exactly one asset (noted).
"""

from __future__ import annotations

# raw_customers
SNAPSHOT = "raw_customers.parquet"
QUARANTINE = "quarantine.parquet"
SUMMARY = "ingest_summary.json"
# customer_features
FEATURES = "customer_features.parquet"
TRANSFORM = "transform.json"
# imputed_customers
IMPUTED = "imputed_customers.parquet"
DRAWS = "imputed_draws.parquet"
# segment_model
MODEL_JSON = "segment_model.json"
SELECTION = "selection.parquet"
ALIGNMENT = "segment_alignment.parquet"
REGISTRY = "segment_registry.parquet"
# segment_model (criterion and log-likelihood plots), segment_profiles (profile plot)
PLOTS = "plots"
# customer_segments, segment_profiles
SEGMENTS = "customer_segments.parquet"
PROFILES = "segment_profiles.parquet"
COMPONENTS = "component_profiles.parquet"
# segment_drift
DRIFT_TRANSITIONS = "drift_transitions.parquet"
DRIFT_SEGMENTS = "drift_segments.parquet"
DRIFT_FEATURES = "drift_features.parquet"
DRIFT_SUMMARY = "drift_summary.json"


def imputed_flag(feature: str) -> str:
    """The ``imputed_customers`` column that flags an imputed cell of ``feature``."""
    return f"{feature}_imputed"
