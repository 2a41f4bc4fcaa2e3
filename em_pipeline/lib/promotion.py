"""The registry alias follows the warehouse champion.

The warehouse's ``segment_champion`` row is the truth about which model BI reads (it is published
with the tables it produced). The MLflow alias is moved after that publish, so a crash in between
leaves it behind; :func:`point_alias_at` is idempotent and the next night calls it again.
"""

from __future__ import annotations

from em_pipeline.lib.mlflow_logging import SegmentTracker


def point_alias_at(
    tracker: SegmentTracker, model_version: str, mlflow_run_id: str, promoted_at: str
) -> bool:
    """Move the alias to ``model_version`` and tag its MLflow run ``promoted=true``; False when
    there was nothing to do (no version, or the alias already points there)."""
    if not model_version or tracker.alias_version() == model_version:
        return False
    tracker.set_alias(model_version)
    if mlflow_run_id:
        tracker.set_tags(mlflow_run_id, {"promoted": "true", "promoted_at": promoted_at})
    return True
