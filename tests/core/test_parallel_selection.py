"""select_model(n_jobs > 1) fits candidates in spawned processes and returns the serial result.

Each candidate's seed depends only on (random_state, K, covariance type) and a worker runs the
same per-candidate code on the same data, so everything but the wall-clock ``seconds`` must be
bit-for-bit the serial run's, *given the same compiled kernels*. The kernels' vector reductions
(``reassoc``) are laid out by LLVM, and a kernel JIT-compiled in this process can round the last
bit differently from the same kernel loaded from numba's on-disk cache, which is what spawned
workers run. The serial reference therefore runs in a spawned process too: like with like.
Spawned processes take ~1-2 s to import em_core: pools are started once per module.
"""

import multiprocessing
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

import em_core.selection
from em_core import ConvergenceWarning, GaussianMixture, ParquetSource, select_model
from em_core.sources import ArraySource

from .conftest import make_mixture, mcar

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SWEEP = dict(
    n_components=range(1, 4), covariance_types=("full", "diag"), n_init=2, max_iter=8, tol=1e-10
)


@dataclass
class Runs:
    serial: em_core.SelectionResult
    parallel: em_core.SelectionResult
    serial_warnings: list[str]
    parallel_warnings: list[str]
    callback_rows: list[dict]
    champion: GaussianMixture


def without_seconds(table: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in table]


def assert_same_selection(got: em_core.SelectionResult, want: em_core.SelectionResult) -> None:
    assert without_seconds(got.table) == without_seconds(want.table)  # floats compared exactly
    assert got.best_index == want.best_index
    assert list(got.models) == list(want.models)
    for key, model in want.models.items():
        other = got.models[key]
        assert (other is None) == (model is None)
        if model is not None:  # parameters, history and restarts, float for float
            assert other.to_dict() == model.to_dict()
    assert got.best.to_dict() == want.best.to_dict()


def _sweep(X, **kw) -> tuple[em_core.SelectionResult, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = select_model(X, **SWEEP, random_state=3, **kw)
    return res, sorted({str(w.message) for w in caught if w.category is ConvergenceWarning})


def in_spawned_process(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh spawned process (see the module docstring)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """3000 × 3 mixture with 10% MCAR cells, so the incomplete-data kernels run too."""
    return mcar(make_mixture(n=3000, d=3, k=3, seed=21).X, 0.10, seed=22)


@pytest.fixture(scope="module")
def runs(data) -> Runs:
    """One serial and one n_jobs=2 sweep, both warm-started from a champion fitted on half the
    rows (max_iter=8 leaves some candidates unconverged, so workers raise warnings)."""
    champion = GaussianMixture(2, covariance_type="diag", random_state=0).fit(data[::2])
    serial, serial_warnings = in_spawned_process(_sweep, data, warm_start=champion)
    rows: list[dict] = []
    parallel, parallel_warnings = _sweep(data, warm_start=champion, n_jobs=2, callback=rows.append)
    return Runs(serial, parallel, serial_warnings, parallel_warnings, rows, champion)


def test_parallel_sweep_equals_the_serial_one(runs):
    assert_same_selection(runs.parallel, runs.serial)


def test_callback_sees_every_candidate_once_with_its_table_position(runs):
    total = len(runs.parallel.table)
    assert sorted(r["index"] for r in runs.callback_rows) == list(range(total))
    for row in runs.callback_rows:
        assert row["total"] == total
        want = runs.parallel.table[row["index"]]
        assert {k: row[k] for k in want} == want


def test_warm_start_reaches_its_candidate_in_a_worker(runs):
    key = (runs.champion.n_components, runs.champion.covariance_type)
    warm_rows = [r for r in runs.parallel.table if r["warm_start"]]
    assert [(r["n_components"], r["covariance_type"]) for r in warm_rows] == [key]
    gm = runs.parallel.models[key]
    assert len(gm.restarts_) == SWEEP["n_init"] + 1 and gm.restarts_[0]["init"] == "warm"


def test_worker_warnings_reach_the_caller(runs):
    assert runs.serial_warnings  # the fixture's max_iter leaves candidates unconverged
    assert runs.parallel_warnings == runs.serial_warnings


def test_parquet_source_sweep_in_processes_equals_serial(tmp_path):
    X = make_mixture(n=3000, d=3, k=3, seed=23).X
    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table({f"x{j}": X[:, j] for j in range(3)}), path, row_group_size=700)
    source = ParquetSource(path, batch_size=1000, chunk_size=512)
    serial = in_spawned_process(select_model, source, **SWEEP, random_state=5)
    parallel = select_model(source, **SWEEP, random_state=5, n_jobs=2)
    assert_same_selection(parallel, serial)


class UnpicklableSource(ArraySource):
    """An in-memory source holding a lock, like a DaskSource holding its client."""

    def __init__(self, X: np.ndarray) -> None:
        super().__init__(X, chunk_size=1024)
        self.lock = threading.Lock()


def test_unpicklable_source_or_single_candidate_stays_serial(monkeypatch, data):
    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(em_core.selection, "map_in_processes", no_pool)
    kw = dict(n_components=[1, 2], covariance_types=("diag",), n_init=1, random_state=0)
    res = select_model(UnpicklableSource(data), **kw, n_jobs=2)
    assert_same_selection(res, select_model(ArraySource(data, chunk_size=1024), **kw))
    one = select_model(data, n_components=[2], covariance_types=("full",), n_jobs=-1)
    assert len(one.table) == 1 and one.table[0]["bic"] is not None


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_bad_n_jobs_raises(data, n_jobs):
    with pytest.raises(ValueError, match="n_jobs"):
        select_model(data, [1, 2], ("diag",), n_jobs=n_jobs)
