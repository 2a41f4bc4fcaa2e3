"""What ``segment_model`` makes of a finished sweep (no Dagster): the components assigned to
stable segment ids, then the model JSON and everything in the night's MLflow parent run (every
candidate, the input dataset, plots, tables, the registered pyfunc model, the summary)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.segment_fit import (
    ModelInputs,
    SweepOutcome,
    SweepSettings,
    bundle_info,
    log_merge_path,
    merged_assignment,
    parent_summary,
)
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.stable_ids import assign_segment_ids


@dataclass(frozen=True)
class SegmentAssignment:
    """Tonight's components as segments: their ids (a ``stable_ids`` assignment), the merge path
    (None when components are segments) and a log line."""

    assignment: Any
    merge_table: pd.DataFrame | None
    note: str


def assign_segments(
    outcome: SweepOutcome, inputs: ModelInputs, snapshot: pd.DataFrame, champion: Any | None,
    schema: CustomerSchema, run_date: str, *, segments: str, min_share: float,
    max_match_distance: float | None,
) -> SegmentAssignment:  # fmt: skip
    """Merged components (``segments="merged"``, DEMP with groups below ``min_share`` merged
    first) or one segment per component, with ids aligned to the champion's segments."""
    model, k = outcome.result.best, outcome.chosen[0]
    if segments == "merged":
        alignment, merged, table = merged_assignment(
            model, inputs, snapshot, champion, schema, run_date, min_share=min_share
        )
        return SegmentAssignment(
            alignment, table, f"{k} components merged into {merged.n_segments} segments (DEMP)"
        )
    alignment = assign_segment_ids(
        model, None if champion is None else champion.bundle, schema, run_date,
        registry=None if champion is None else champion.registry,
        max_match_distance=max_match_distance,
    )  # fmt: skip
    return SegmentAssignment(alignment, None, f"{k} components are the segments")


@dataclass(frozen=True)
class RecordedModel:
    """The saved model JSON and where MLflow keeps the night's record."""

    bundle: SegmentBundle
    path: Path
    model_uri: str
    version: str
    digest: str
    plots: list[Path]


@dataclass(frozen=True)
class Lineage:
    """Where tonight's model comes from (stored in the model JSON's ``info``)."""

    run_date: str
    dagster_run_id: str
    snapshot_path: str
    champion: Any | None
    warm_started: bool
    min_segment_share: float


def record_model(
    tracker: Any, parent: str, lineage: Lineage, settings: SweepSettings, inputs: ModelInputs,
    outcome: SweepOutcome, segments: SegmentAssignment, snapshot: pd.DataFrame,
    schema: CustomerSchema, model_path: Path, plots_dir: Path,
) -> RecordedModel:  # fmt: skip
    """Log every candidate and the input dataset to the parent run, save the model JSON at
    ``model_path``, then log the plots (also written to ``plots_dir``), the selection, alignment
    and merge tables, the JSON, the registered pyfunc model and the run's summary."""
    outcome.log_candidates(tracker, parent, settings.fit_params())
    digest = tracker.log_dataset(
        parent, snapshot, source=lineage.snapshot_path, name="raw_customers"
    )
    assignment = segments.assignment
    info = bundle_info(
        lineage.run_date, lineage.dagster_run_id, parent, digest, settings, inputs,
        lineage.champion, lineage.warm_started, outcome, assignment,
    ) | {"min_segment_share": lineage.min_segment_share}  # fmt: skip
    bundle = SegmentBundle.build(
        outcome.result.best, schema, inputs.transform, info, assignment.component_to_segment,
        assignment.labels,
    )  # fmt: skip
    bundle.save(model_path)
    plots = outcome.log_plots(tracker, parent, settings.criterion, plots_dir)
    tracker.log_table(parent, outcome.table, "selection_table", "selection")
    tracker.log_table(parent, assignment.alignment, "segment_alignment", "segments")
    tracker.log_table(parent, assignment.registry, "segment_registry_proposed", "segments")
    tracker.log_artifacts(parent, [model_path], "model_json")
    if segments.merge_table is not None:
        log_merge_path(tracker, parent, segments.merge_table)
    example = snapshot[schema.feature_names].head(20)
    model_uri, version = tracker.log_pyfunc_model(
        parent, model_path, example, bundle.score(example), code_paths(), pip_requirements()
    )
    tracker.log_parent_summary(parent, **parent_summary(
        settings, outcome, inputs, assignment, bundle, lineage.champion, version, digest
    ))  # fmt: skip
    return RecordedModel(bundle, model_path, model_uri, version, digest, plots)


def code_paths() -> list[str]:
    """em_core and em_pipeline, copied into the pyfunc model."""
    import em_core
    import em_pipeline

    return [str(Path(em_core.__file__).parent), str(Path(em_pipeline.__file__).parent)]


def pip_requirements() -> list[str]:
    import mlflow
    import numpy
    import scipy

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={numpy.__version__}",
        f"scipy=={scipy.__version__}",
        f"pandas=={pd.__version__}",
    ]
