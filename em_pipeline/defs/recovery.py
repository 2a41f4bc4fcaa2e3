"""Start-of-night repair of what a crashed night left half-done (see ``published_versions``)."""

from __future__ import annotations

from em_pipeline.defs.resources import MlflowTracker, Warehouse
from em_pipeline.lib.promotion import point_alias_at


class RegistryReset(RuntimeError):
    """The MLflow registry does not know the warehouse champion's model version."""


def repair_home(warehouse: Warehouse, mlflow_tracker: MlflowTracker) -> list[str]:
    """Remove publish leftovers and move the registry alias to the warehouse champion; one
    message per repair made. Raises :class:`RegistryReset` when the MLflow store was reset or
    replaced (its versions would restart at 1 and collide with published ones)."""
    done = [f"removed publish leftover {p.name}" for p in warehouse.recover()]
    champion = warehouse.load_champion()
    if champion is not None and champion.model_version:
        tracker = mlflow_tracker.tracker()
        registered = tracker.version_run_id(champion.model_version)
        if registered is None or registered != (champion.mlflow_run_id or registered):
            raise RegistryReset(
                f"the MLflow store {mlflow_tracker.tracking_uri} does not hold the champion's "
                f"model: version {champion.model_version} of "
                f"{mlflow_tracker.registered_model_name} should come from MLflow run "
                f"{champion.mlflow_run_id} (published {champion.run_date}) but "
                + ("does not exist" if registered is None else f"comes from run {registered}")
                + ". The store was reset or replaced, and new model versions would collide with "
                "published ones: restore it, or point EM_SEGMENTS_MLFLOW_TRACKING_URI at the "
                "right store (a new warehouse needs a new home)"
            )
        if point_alias_at(
            tracker, champion.model_version, champion.mlflow_run_id, champion.promoted_at
        ):
            done.append(
                f"registry alias {mlflow_tracker.alias} moved to version "
                f"{champion.model_version}, the warehouse champion of {champion.run_date} (the "
                "night that published it stopped before moving the alias)"
            )
    return done
