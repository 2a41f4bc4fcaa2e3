"""Out-of-core (Parquet) and distributed (Dask) sources give the in-memory fit.

Same data and seed ⇒ same sampled rows for k-means++ ⇒ same initial parameters ⇒ the same EM
trajectory, up to floating-point summation order (≤ 1e-10 relative). Chunk (batch, partition)
size changes only that order.
"""

import itertools
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from em_core import (
    DaskSource,
    GaussianMixture,
    ParquetSource,
    fit_parquet,
    open_source,
    select_model,
)
from em_core.sources import ArraySource

from .conftest import make_mixture, mcar

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

RTOL = 1e-10
COLUMNS = ["x0", "x1", "x2", "x3"]


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """4000 × 4 mixture with 12% MCAR cells (NaN)."""
    return mcar(make_mixture(n=4000, d=4, k=3, seed=11).X, 0.12, seed=12)


def _table(X: np.ndarray, ids: np.ndarray) -> "pa.Table":
    """Column x0 keeps NaN as a float NaN value, the others store missing cells as nulls."""
    cols = {"customer_id": pa.array([f"c{i}" for i in ids])}
    for j, name in enumerate(COLUMNS):
        cols[name] = pa.array(X[:, j]) if j == 0 else pa.array(X[:, j], from_pandas=True)
    return pa.table(cols)


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory, data) -> str:
    path = tmp_path_factory.mktemp("pq") / "customers.parquet"
    pq.write_table(_table(data, np.arange(len(data))), path, row_group_size=700)
    return str(path)


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory, data) -> str:
    """Three files of unequal size in nested folders (sorted path order = row order) with
    different row-group sizes, plus a marker file that must be skipped."""
    root = tmp_path_factory.mktemp("pqdir")
    cuts = [0, 1234, 2900, len(data)]
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        sub = root / f"part={i}"
        sub.mkdir()
        table = _table(data[a:b], np.arange(a, b))
        pq.write_table(table, sub / f"data-{i}.parquet", row_group_size=300 + 250 * i)
    (root / "_SUCCESS").write_text("")
    return str(root)


def gm_kwargs(covariance_type: str, **extra) -> dict:
    kw = dict(
        n_components=3,
        covariance_type=covariance_type,
        random_state=5,
        n_init=1,
        init_max_samples=1500,
        tol=1e-8,
        max_iter=200,
    )
    kw.update(extra)
    return kw


def assert_same_fit(a: GaussianMixture, b: GaussianMixture) -> None:
    """Same trajectory for every restart; same parameters for the kept one. (Restarts that
    reach the same optimum tie up to rounding, and then either may be kept.)"""
    assert abs(a.log_likelihood_ - b.log_likelihood_) <= RTOL * abs(a.log_likelihood_)
    for ha, hb in zip(a.history_, b.history_, strict=True):
        np.testing.assert_allclose(hb, ha, rtol=RTOL, atol=0)
    if a.best_restart_ != b.best_restart_:
        assert a.history_[b.best_restart_][-1] == pytest.approx(a.log_likelihood_, rel=RTOL)
        return
    assert a.n_iter_ == b.n_iter_
    for name in ("weights_", "means_", "covariances_"):
        va, vb = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(vb, va, rtol=RTOL, atol=RTOL * np.abs(va).max())


def fit_memory(X, **kw) -> GaussianMixture:
    return GaussianMixture(**kw).fit(X)


# --------------------------------------------------------------------------- Parquet
def test_parquet_source_metadata_and_rows(parquet_file, parquet_folder, data):
    for path in (parquet_file, parquet_folder):
        src = ParquetSource(path, columns=COLUMNS, batch_size=512)
        assert (src.n_samples, src.n_features) == data.shape
        streamed = np.concatenate(list(src.chunks()))
        np.testing.assert_array_equal(streamed, data)  # nulls and NaN values both → NaN
        assert max(len(c) for c in src.chunks()) <= 512
        src = ParquetSource(path, columns=COLUMNS, batch_size=512, chunk_size=100)
        assert max(len(c) for c in src.chunks()) == 100


@pytest.mark.parametrize("size", [1, 333, 3999, 4000, 10_000])
def test_parquet_sample_draws_the_in_memory_rows(parquet_folder, data, size):
    src = ParquetSource(parquet_folder, columns=COLUMNS, batch_size=256)
    mem = ArraySource(data, 1000)
    got = src.sample(np.random.default_rng(3), size)
    want = mem.sample(np.random.default_rng(3), size)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_parquet_file_fit_equals_in_memory_fit(parquet_file, data, covariance_type):
    kw = gm_kwargs(covariance_type)
    want = fit_memory(data, **kw)
    got = GaussianMixture(**kw).fit_source(ParquetSource(parquet_file, columns=COLUMNS))
    assert_same_fit(want, got)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_parquet_folder_fit_equals_in_memory_fit(parquet_folder, data, covariance_type):
    kw = gm_kwargs(covariance_type, init_max_samples=100_000, n_init=3)  # sample = all rows
    want = fit_memory(data, **kw)
    got = fit_parquet(parquet_folder, columns=COLUMNS, batch_size=1000, **kw)
    assert_same_fit(want, got)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_batch_size_does_not_change_the_fit(parquet_folder, data, covariance_type):
    kw = gm_kwargs(covariance_type)
    fits = [
        GaussianMixture(**kw).fit_source(ParquetSource(parquet_folder, COLUMNS, batch, chunk))
        for batch, chunk in ((97, 16384), (1024, 300), (65536, 65536))
    ]
    fits += [fit_memory(data, chunk_size=c, **kw) for c in (101, 100_000)]
    for other in fits[1:]:
        assert_same_fit(fits[0], other)


def test_select_model_on_a_parquet_source(parquet_file, data):
    kw = dict(n_components=[1, 2, 3], covariance_types=["full", "diag"], n_init=1, tol=1e-6)
    want = select_model(data, **kw)
    got = select_model(ParquetSource(parquet_file, COLUMNS), **kw)
    assert got.best_index == want.best_index
    for rw, rg in zip(want.table, got.table, strict=True):
        assert abs(rg["bic"] - rw["bic"]) <= RTOL * abs(rw["bic"])


def test_parquet_rejects_bad_input(tmp_path, parquet_file):
    with pytest.raises(ValueError, match="not numeric"):
        ParquetSource(parquet_file)  # customer_id is a string column
    with pytest.raises(ValueError, match="no column"):
        ParquetSource(parquet_file, columns=["x0", "nope"])
    with pytest.raises(FileNotFoundError):
        ParquetSource(tmp_path / "missing.parquet")
    X = np.ones((50, 2))
    X[7, 1] = np.inf
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), tmp_path / "inf.parquet")
    with pytest.raises(ValueError, match=r"±inf \(first in row 7\)"):
        fit_parquet(tmp_path / "inf.parquet", batch_size=5, n_components=1)
    X[7, 1] = np.nan
    X[9] = np.nan
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match=r"every cell missing \(row 9\)"):
        fit_parquet(tmp_path / "empty.parquet", batch_size=4, n_components=1)


def test_em_core_import_stays_light():
    code = (
        "import sys, em_core\n"
        "print(','.join(m for m in ('pyarrow', 'dask', 'distributed', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import dask

    from em_core.backends import dask_worker_config

    saved = dict(os.environ)
    with warnings.catch_warnings(), dask.config.set(dask_worker_config()):
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,  # real pickling (cloudpickle) of the E-step closures
            dashboard_address=None,
            worker_dashboard_address=None,
        )
        client = distributed.Client(cluster)
    # the nanny exports pre-spawn-environ into this process too; NUMBA_NUM_THREADS=1 left here
    # makes numba refuse to compile anything new once its threads run (see dask_worker_config)
    os.environ.clear()
    os.environ.update(saved)
    yield client
    client.close()
    cluster.close()


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_dask_array_fit_equals_in_memory_fit(client, data, covariance_type):
    da = pytest.importorskip("dask.array")
    kw = gm_kwargs(covariance_type, n_init=2)
    want = fit_memory(data, **kw)
    src = DaskSource(da.from_array(data, chunks=(700, 2)), client=client, split_every=2)
    assert src.n_partitions == 6 and src.n_samples == len(data)
    np.testing.assert_array_equal(
        src.sample(np.random.default_rng(1), 500),
        ArraySource(data, 100).sample(np.random.default_rng(1), 500),
    )
    assert_same_fit(want, GaussianMixture(**kw).fit_source(src))
    src.close()


def test_dask_dataframe_fit_equals_in_memory_fit(client, data):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame(data, columns=COLUMNS).assign(customer_id=np.arange(len(data)))
    ddf = dd.from_pandas(frame, npartitions=5)
    kw = gm_kwargs("full")
    with DaskSource(ddf, client=client, columns=COLUMNS) as src:
        assert src.columns == COLUMNS
        got = GaussianMixture(**kw).fit_source(src)
    assert_same_fit(fit_memory(data, **kw), got)


def test_dask_parquet_folder_fit_equals_in_memory_fit(client, parquet_folder, data):
    kw = gm_kwargs("tied")
    src = open_source(
        parquet_folder, columns=COLUMNS, dask=client, partition_rows=500, chunk_size=256
    )
    assert isinstance(src, DaskSource) and src.n_partitions > 3
    assert_same_fit(fit_memory(data, **kw), GaussianMixture(**kw).fit_source(src))
    src.close()


def test_dask_from_array_scatters_blocks(client, data):
    kw = gm_kwargs("spherical", n_init=2)
    with DaskSource.from_array(data, client=client, partition_rows=1000) as src:
        assert src.n_partitions == 4
        got = GaussianMixture(**kw).fit_source(src)
    assert_same_fit(fit_memory(data, **kw), got)


def test_dask_rejects_bad_input(client):
    da = pytest.importorskip("dask.array")
    X = np.ones((40, 3))
    X[25] = np.nan
    with pytest.raises(ValueError, match=r"every cell missing \(row 25\)"):
        DaskSource(da.from_array(X, chunks=(10, 3)), client=client)
    with pytest.raises(TypeError, match="DaskSource takes"):
        DaskSource(X, client=client)
