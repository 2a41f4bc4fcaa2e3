"""The compute resource switches the model selection to a Dask cluster with no code change."""

import numpy as np
import pytest

from em_core import DaskSource, select_model
from em_pipeline import settings
from em_pipeline.defs.resources import ComputeBackend, default_resources


def _data():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 1.0, size=(200, 3)) for c in (-4.0, 0.0, 4.0)])
    X[rng.random(X.shape) < 0.1] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    return X


def test_in_memory_backend_hands_over_the_matrix():
    X = _data()
    with ComputeBackend().data(X) as data:
        assert data is X


def test_n_jobs_comes_from_the_environment_and_is_ignored_on_dask(monkeypatch, tmp_path):
    assert ComputeBackend().selection_n_jobs == 1
    monkeypatch.setenv(settings.N_JOBS_ENV, "-1")
    compute = default_resources(tmp_path)["compute"]
    assert compute.n_jobs == -1 and compute.selection_n_jobs == -1
    assert compute.name == "memory, n_jobs=-1"
    dask = ComputeBackend(dask_scheduler_address="tcp://scheduler:8786", n_jobs=2)
    assert dask.selection_n_jobs == 1
    monkeypatch.setenv(settings.N_JOBS_ENV, "two")
    with pytest.raises(ValueError, match=settings.N_JOBS_ENV):
        settings.n_jobs()


def test_both_model_selections_take_the_compute_resource():
    """The segment model and the imputation model both read n_jobs from ``compute``."""
    from em_pipeline.defs.assets.impute import imputed_customers
    from em_pipeline.defs.assets.model import segment_model

    for asset in (imputed_customers, segment_model):
        assert "compute" in asset.required_resource_keys


def test_dask_backend_gives_the_in_memory_selection():
    distributed = pytest.importorskip("distributed")
    X = _data()
    kwargs = dict(n_components=[1, 3], covariance_types=("full", "diag"), n_init=1, max_iter=15)
    reference = select_model(X, **kwargs, random_state=0)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        backend = ComputeBackend(
            dask_scheduler_address=cluster.scheduler_address, partition_rows=250
        )
        assert backend.name.startswith("dask")
        with backend.data(X) as data:
            assert isinstance(data, DaskSource)
            result = select_model(data, **kwargs, random_state=0)
    assert result.best_index == reference.best_index
    for got, want in zip(result.table, reference.table, strict=True):
        assert got["log_likelihood"] == pytest.approx(want["log_likelihood"], rel=1e-10)
