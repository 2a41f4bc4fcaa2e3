"""CLI runs recorded as runs of the ``em_segments`` code location, as if launched from the UI.

``execute_in_process`` stores a run without a code-location origin, so the Dagster UI lists it
under Runs but not on the job's page nor on the Overview timeline (both select runs by their
repository). The CLI therefore tags its run with the repository label and, when the run ends,
gives it the origin ``dagster dev -w workspace.yaml`` gives its own runs (the same call as
``dagster run migrate-repository``).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from em_pipeline import settings

#: workspace.yaml's location (and pyproject's [tool.dg.project] code_location_name)
CODE_LOCATION = "em_segments"
DEFINITIONS_MODULE = "em_pipeline.definitions"
#: the repository name Dagster gives a Definitions object
REPOSITORY = "__repository__"


def job_origin(job_name: str = settings.JOB_NAME) -> RemoteJobOrigin:
    """The origin the webserver gives runs of ``job_name`` launched from workspace.yaml."""
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(module_name=DEFINITIONS_MODULE), location_name=CODE_LOCATION
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY), job_name)


def repository_tags() -> dict[str, str]:
    """The run tag the job's page in the UI selects its runs by."""
    return {REPOSITORY_LABEL_TAG: job_origin().repository_origin.get_label()}


def record_as_code_location_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Give the stored run the code location's origin, so the timeline shows it."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.remote_job_origin is None:
        instance.run_storage.replace_job_origin(run, job_origin(run.job_name))
