"""Start-of-night repair of what a crashed night left half-done (see ``published_versions``)."""

from __future__ import annotations

from em_pipeline.defs.resources import MlflowTracker, Warehouse
from em_pipeline.lib.promotion import point_alias_at


def repair_home(warehouse: Warehouse, mlflow_tracker: MlflowTracker) -> list[str]:
    """Remove publish leftovers and move the registry alias to the warehouse champion; one
    message per repair made."""
    done = [f"removed publish leftover {p.name}" for p in warehouse.recover()]
    champion = warehouse.load_champion()
    if champion is not None and champion.model_version:
        tracker = mlflow_tracker.tracker()
        if point_alias_at(
            tracker, champion.model_version, champion.mlflow_run_id, champion.promoted_at
        ):
            done.append(
                f"registry alias {mlflow_tracker.alias} moved to version "
                f"{champion.model_version}, the warehouse champion of {champion.run_date} (the "
                "night that published it stopped before moving the alias)"
            )
    return done
