"""Dagster entry point: autoloads every definition under ``em_pipeline/defs``.

``dagster dev -w workspace.yaml`` (or ``dagster dev -m em_pipeline.definitions``) loads this module.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
