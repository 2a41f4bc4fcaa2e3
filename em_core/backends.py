"""Out-of-core and distributed chunk sources: Parquet streamed with pyarrow, partitions on Dask.

Both implement :class:`~em_core.sources.ChunkSource`, so :meth:`GaussianMixture.fit_source
<em_core.GaussianMixture.fit_source>` (column moments, k-means++ on a sample, the hard-assignment
pass, every EM iteration and every restart) and :func:`~em_core.select_model` run on them
unchanged. The kernels are the in-memory ones; only the place where a chunk is summarised differs.

Rows have a global order (files sorted by path, then row order inside a file; partitions in
order), and :meth:`sample` draws the same row indices as :class:`~em_core.sources.ArraySource`
for the same generator, so a fit from Parquet or Dask equals the in-memory fit on the same data
and seed up to floating-point summation order.

pyarrow and dask are imported when a source is built, never at ``import em_core``.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ._typing import FloatArray
from .estep import pattern_keys

T = TypeVar("T")

__all__ = [
    "DASK_WORKER_ENV",
    "DaskSource",
    "ParquetSource",
    "dask_worker_config",
    "fit_parquet",
    "open_source",
]


# --------------------------------------------------------------------------- shared helpers
@dataclass
class BlockCheck:
    """Additive validity summary of some rows: count, observed cells per column, bad rows."""

    n_rows: int
    observed: FloatArray
    first_inf: int | None = None  # row index (within the summarised rows) of the first ±inf
    first_empty: int | None = None  # first row with every cell missing

    @classmethod
    def of(cls, X: FloatArray) -> "BlockCheck":
        missing = np.isnan(X)
        inf = np.flatnonzero(np.isinf(X).any(axis=1))
        empty = np.flatnonzero(missing.all(axis=1))
        return cls(
            X.shape[0],
            (~missing).sum(axis=0).astype(float),
            int(inf[0]) if inf.size else None,
            int(empty[0]) if empty.size else None,
        )

    def __add__(self, other: "BlockCheck") -> "BlockCheck":
        def first(a: int | None, b: int | None) -> int | None:
            return a if a is not None else (None if b is None else b + self.n_rows)

        return BlockCheck(
            self.n_rows + other.n_rows,
            self.observed + other.observed,
            first(self.first_inf, other.first_inf),
            first(self.first_empty, other.first_empty),
        )

    def raise_if_invalid(self, columns: Sequence[str], where: str, offset: int = 0) -> None:
        """ValueError for ±inf, a row with every cell missing, or a column with none observed."""
        if self.first_inf is not None:
            raise ValueError(
                f"{where} contains ±inf (first in row {offset + self.first_inf}); "
                "use NaN (null) for missing cells"
            )
        if self.first_empty is not None:
            raise ValueError(
                f"{where} has a row with every cell missing (row {offset + self.first_empty}); "
                "such rows carry no information — remove or quarantine them"
            )
        empty_cols = [c for c, k in zip(columns, self.observed, strict=True) if k == 0]
        if self.n_rows and empty_cols:
            raise ValueError(f"{where} has column(s) {empty_cols} with every cell missing")


def map_rows(
    fn: Callable[[FloatArray], T],
    X: FloatArray,
    chunk_size: int,
    total: T | None = None,
    group_patterns: bool = True,
) -> T:
    """``total`` + Σ fn(rows) over slices of ``chunk_size`` rows of X.

    With ``group_patterns`` and missing cells present, the rows are first put in missingness-
    pattern order (as ArraySource does for the whole array), so each chunk holds few patterns and
    the E-step factorises each pattern once per chunk; only the summation order changes.
    """
    if group_patterns:
        missing = np.isnan(X)
        if missing.any():
            X = X[np.argsort(pattern_keys(missing), kind="stable")]
    for start in range(0, X.shape[0], chunk_size):
        part = fn(X[start : start + chunk_size])
        total = part if total is None else total + part
    return total


def _check_chunk_size(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _sample_rows(rng: np.random.Generator, n: int, size: int) -> np.ndarray | None:
    """Sorted row indices of a seeded sample, exactly as ArraySource.sample draws them (None:
    take every row, and consume nothing from ``rng``)."""
    if size >= n:
        return None
    return np.sort(rng.choice(n, size=size, replace=False))


def _take_sorted(
    blocks: Iterator[tuple[int, FloatArray]], rows: np.ndarray, n_features: int
) -> FloatArray:
    """Gather sorted global ``rows`` from ``(offset, block)`` pairs visited in row order."""
    out = np.empty((rows.size, n_features))
    for offset, X in blocks:
        lo, hi = np.searchsorted(rows, [offset, offset + X.shape[0]])
        out[lo:hi] = X[rows[lo:hi] - offset]
    return out


def _is_numeric_arrow(t) -> bool:
    import pyarrow as pa

    types = pa.types
    return types.is_integer(t) or types.is_floating(t) or types.is_boolean(t) or types.is_decimal(t)


def arrow_to_float(columns: Sequence[Any], n_rows: int) -> FloatArray:
    """(n, d) C-contiguous float64 from Arrow arrays or chunked arrays; null → NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    X = np.empty((n_rows, len(columns)))
    for j, col in enumerate(columns):
        col = pc.cast(col, pa.float64())
        if col.null_count:
            col = pc.fill_null(col, np.nan)
        X[:, j] = col.to_numpy()
    return X


# --------------------------------------------------------------------------- Parquet
def parquet_files(path: str | Path) -> list[Path]:
    """A Parquet file, or every ``*.parquet`` file under a folder (recursively, sorted by path;
    names starting with ``_`` or ``.``, like ``_metadata`` or ``_SUCCESS``, are skipped)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"no Parquet file or folder at {str(root)!r}")
    files = sorted(
        f
        for f in root.rglob("*.parquet")
        if f.is_file()
        and not any(part.startswith(("_", ".")) for part in f.relative_to(root).parts)
    )
    if not files:
        raise ValueError(f"folder {str(root)!r} holds no *.parquet files")
    return files


class ParquetSource:
    """Rows of a Parquet file or folder of files, streamed in record batches with pyarrow.

    Every pass opens one file at a time (``pre_buffer=False``) and converts one record batch of
    at most ``batch_size`` rows to a float64 array, which the E-step then walks in views of
    ``chunk_size`` rows (small chunks keep its temporaries in cache). Memory is bounded by the
    batch size and the files' row-group size, not by the number of rows. Nulls become NaN
    (missing cells).

    Parameters
    ----------
    path : a ``.parquet`` file or a folder of them (read recursively, in sorted path order).
    columns : feature columns, in order; default every column of the first file (all must be
        numeric: integer, floating, boolean or decimal).
    batch_size : rows per record batch read and converted at a time (at most one row group).
    chunk_size : rows per E-step chunk (as ``GaussianMixture(chunk_size=...)``); changes only
        the floating-point summation order.

    The first full pass (the column moments of a fit) also validates the rows: ±inf, rows with
    every cell missing and columns with no observed cell raise ValueError, as in-memory fits do.
    """

    def __init__(
        self,
        path: str | Path,
        columns: Sequence[str] | None = None,
        batch_size: int = 65536,
        chunk_size: int = 16384,
    ) -> None:
        import pyarrow.parquet as pq

        self.batch_size = _check_chunk_size("batch_size", batch_size)
        self.chunk_size = _check_chunk_size("chunk_size", chunk_size)
        self.path = Path(path)
        self.files = parquet_files(path)
        self.row_groups: list[np.ndarray] = []  # rows per row group, per file
        for i, f in enumerate(self.files):
            meta = pq.read_metadata(f)
            schema = meta.schema.to_arrow_schema()
            if i == 0:
                names = [n for n in schema.names if not n.startswith("__index_level_")]
                self.columns = list(columns) if columns is not None else names
                if not self.columns:
                    raise ValueError("no feature columns selected")
            absent = [c for c in self.columns if c not in schema.names]
            if absent:
                raise ValueError(f"{f} has no column(s) {absent}")
            bad = [c for c in self.columns if not _is_numeric_arrow(schema.field(c).type)]
            if bad:
                raise ValueError(
                    f"column(s) {bad} of {f} are not numeric "
                    f"({[str(schema.field(c).type) for c in bad]}); pass numeric `columns`"
                )
            rg = [meta.row_group(r).num_rows for r in range(meta.num_row_groups)]
            self.row_groups.append(np.asarray(rg, dtype=np.int64))
        self.file_rows = np.array([int(r.sum()) for r in self.row_groups], dtype=np.int64)
        self.n_samples = int(self.file_rows.sum())
        self.n_features = len(self.columns)
        if self.n_samples == 0:
            raise ValueError(f"{str(self.path)!r} holds no rows")
        self._validated = False

    def __repr__(self) -> str:
        return (
            f"ParquetSource({str(self.path)!r}, files={len(self.files)}, "
            f"n_samples={self.n_samples}, columns={self.columns})"
        )

    def blocks(self, row_groups: list[list[int] | None] | None = None):
        """Yield ``(global row offset, (rows, d) float64 batch)`` in row order.

        ``row_groups[i]`` restricts file i to those row groups (``[]`` skips the file); the
        offsets stay global.
        """
        import pyarrow.parquet as pq

        file_offset = 0
        for i, f in enumerate(self.files):
            groups = None if row_groups is None else row_groups[i]
            if groups is not None and len(groups) == 0:
                file_offset += int(self.file_rows[i])
                continue
            starts = np.concatenate([[0], np.cumsum(self.row_groups[i])])
            todo = range(len(self.row_groups[i])) if groups is None else groups
            with pq.ParquetFile(f, pre_buffer=False) as pf:
                for g in todo:
                    offset = file_offset + int(starts[g])
                    for batch in pf.iter_batches(
                        self.batch_size, row_groups=[g], columns=self.columns
                    ):
                        cols = [batch.column(c) for c in self.columns]
                        X = arrow_to_float(cols, batch.num_rows)
                        yield offset, X
                        offset += X.shape[0]
            file_offset += int(self.file_rows[i])

    def chunks(self) -> Iterator[FloatArray]:
        """The E-step chunks: views of at most ``chunk_size`` rows of each batch."""
        for _, X in self.blocks():
            for start in range(0, X.shape[0], self.chunk_size):
                yield X[start : start + self.chunk_size]

    def map_reduce(self, fn: Callable[[FloatArray], T]) -> T:
        total = None
        check = None if self._validated else BlockCheck(0, np.zeros(self.n_features))
        for offset, X in self.blocks():
            if check is not None:
                block = BlockCheck.of(X)
                block.raise_if_invalid(self.columns, f"Parquet data at {self.path}", offset)
                check = check + block
            total = map_rows(fn, X, self.chunk_size, total)
        if check is not None:
            check.raise_if_invalid(self.columns, f"Parquet data at {self.path}")
            self._validated = True
        return total

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        rows = _sample_rows(rng, self.n_samples, size)
        if rows is None:
            return np.concatenate([X for _, X in self.blocks()])
        # read only the row groups that hold a sampled row
        needed: list[list[int]] = []
        file_offset = 0
        for rg in self.row_groups:
            bounds = file_offset + np.concatenate([[0], np.cumsum(rg)])
            counts = np.diff(np.searchsorted(rows, bounds))
            needed.append([int(g) for g in np.flatnonzero(counts)])
            file_offset = int(bounds[-1])
        return _take_sorted(self.blocks(needed), rows, self.n_features)


def fit_parquet(
    path: str | Path,
    columns: Sequence[str] | None = None,
    batch_size: int = 65536,
    **gm_kwargs: Any,
):
    """Fit a :class:`~em_core.GaussianMixture` (``gm_kwargs``) streaming from Parquet; the
    E-step chunk size is the model's ``chunk_size``."""
    from .mixture import GaussianMixture

    gm = GaussianMixture(**gm_kwargs)
    return gm.fit_source(ParquetSource(path, columns, batch_size, gm.chunk_size))


# --------------------------------------------------------------------------- Dask
#: Environment for Dask worker processes (``distributed.nanny.pre-spawn-environ``). Dask's
#: default MALLOC_TRIM_THRESHOLD_=65536 makes glibc unmap every freed E-step temporary, so each
#: chunk page-faults its buffers afresh; with these values a worker's E-step is as fast as the
#: same kernel outside Dask. NUMBA_NUM_THREADS=1 follows Dask's
#: own OMP/MKL/OPENBLAS_NUM_THREADS=1: parallelism comes from the worker's task slots, and a
#: numba thread pool per worker process would oversubscribe the cores; OMP_WAIT_POLICY as
#: :func:`em_core.configure_threads` sets it in a client process. Use as
#: ``dask.config.set({"distributed.nanny.pre-spawn-environ": {**current, **DASK_WORKER_ENV}})``
#: before starting workers, or export ``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__...``.
DASK_WORKER_ENV = {
    "MALLOC_TRIM_THRESHOLD_": 64 * 2**20,
    "MALLOC_MMAP_THRESHOLD_": 16 * 2**20,
    "NUMBA_NUM_THREADS": 1,
    "OMP_WAIT_POLICY": "PASSIVE",
}


def dask_worker_config() -> dict[str, Any]:
    """``dask.config.set(dask_worker_config())`` before starting (local) workers: the current
    ``pre-spawn-environ`` plus :data:`DASK_WORKER_ENV`.

    distributed's nanny also writes these variables into the environment of the process that
    starts the workers and leaves them there. In that process ``NUMBA_NUM_THREADS=1`` then makes
    numba refuse to compile anything new once its thread pool runs with another size (a
    ``RuntimeError`` at the next compilation); restore ``os.environ`` after the cluster has
    started (as ``tests/core/test_backends.py`` does) when the client process keeps computing."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    return {"distributed.nanny.pre-spawn-environ": {**environ, **DASK_WORKER_ENV}}


def _apply(fn: Callable[[FloatArray], T], X: FloatArray, chunk_size: int) -> T:
    return map_rows(fn, X, chunk_size)


def _sum_all(*parts: T) -> T:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _take_rows(X: FloatArray, rows: np.ndarray) -> FloatArray:
    return X[rows]


def _as_float_block(block: Any) -> FloatArray:
    return np.ascontiguousarray(np.asarray(block), dtype=np.float64)


def _frame_to_float(frame: Any) -> FloatArray:
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float64, na_value=np.nan))


def _read_parquet_part(path: str, row_groups: list[int], columns: list[str]) -> FloatArray:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, pre_buffer=False) as pf:
        table = pf.read_row_groups(row_groups, columns=columns)
    return arrow_to_float([table.column(c) for c in columns], table.num_rows)


def _resolve_client(client: Any):
    """(Client, owned): the given Client, a new Client for an address string, or the default."""
    from distributed import Client, get_client

    if client is None:
        try:
            return get_client(), False
        except ValueError as exc:
            raise ValueError(
                "DaskSource needs a dask.distributed Client: pass client=Client(...) or a "
                "scheduler address such as 'tcp://scheduler:8786'"
            ) from exc
    if isinstance(client, str):
        return Client(client), True
    return client, False


class DaskSource:
    """Rows held on Dask workers; E-step summaries computed there and tree-reduced.

    The data are converted to one float64 (rows, d) block per partition and kept in the
    workers' memory (persisted once), so EM iterations never re-read or re-convert them. Each
    :meth:`map_reduce` submits ``fn`` (cloudpickled by dask) on every block, sums the results on
    the workers ``split_every`` at a time in a fixed order (deterministic regardless of
    scheduling) and returns the total; the M-step then runs on the client.

    Parameters
    ----------
    data : a ``dask.dataframe.DataFrame`` (numeric columns; ``columns`` selects and orders them),
        a 2-D ``dask.array.Array``, or a sequence of futures of (rows, d) float arrays. Use
        :meth:`from_parquet` to read a Parquet file or folder on the workers, and
        :meth:`from_array` to scatter an in-memory array.
    client : ``distributed.Client``, a scheduler address (a Client is created and closed by
        :meth:`close`), or None for the current default client.
    split_every : fan-in of the tree reduction.
    chunk_size : rows per E-step chunk inside a block (views; as ``GaussianMixture``).

    Workers must be able to import ``em_core`` (same environment as the client).
    """

    def __init__(
        self,
        data: Any,
        *,
        client: Any = None,
        columns: Sequence[str] | None = None,
        split_every: int = 8,
        chunk_size: int = 16384,
    ) -> None:
        if int(split_every) < 2:
            raise ValueError(f"split_every must be >= 2, got {split_every!r}")
        self.split_every = int(split_every)
        self.chunk_size = _check_chunk_size("chunk_size", chunk_size)
        self.columns: list[str] | None = None
        self.client, self._owns_client = _resolve_client(client)
        try:
            if isinstance(data, list | tuple):
                self._parts = list(data)
                self.columns = None if columns is None else [str(c) for c in columns]
            else:
                self._parts = self.client.compute(self._delayed_blocks(data, columns))
            self._inspect()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_parquet(
        cls,
        path: str | Path,
        *,
        client: Any = None,
        columns: Sequence[str] | None = None,
        partition_rows: int = 1_000_000,
        split_every: int = 8,
        chunk_size: int = 16384,
    ) -> "DaskSource":
        """Read a Parquet file or folder on the workers, one block per run of whole row groups
        of about ``partition_rows`` rows, in the same row order as :class:`ParquetSource`.
        The path must be readable by every worker (shared filesystem)."""
        meta = ParquetSource(path, columns)  # metadata only: files, row groups, columns
        parts = []  # (file, [row groups]) per block
        for f, rg in zip(meta.files, meta.row_groups, strict=True):
            group: list[int] = []
            rows = 0
            for g, n in enumerate(rg):
                group.append(g)
                rows += int(n)
                if rows >= partition_rows or g == len(rg) - 1:
                    parts.append((str(f), group))
                    group, rows = [], 0
        return cls._from_futures(
            client,
            lambda c: [
                c.submit(_read_parquet_part, f, g, meta.columns, pure=False) for f, g in parts
            ],
            columns=meta.columns,
            split_every=split_every,
            chunk_size=chunk_size,
        )

    @classmethod
    def from_array(
        cls,
        X: Any,
        *,
        client: Any = None,
        partition_rows: int = 1_000_000,
        columns: Sequence[str] | None = None,
        split_every: int = 8,
        chunk_size: int = 16384,
    ) -> "DaskSource":
        """Scatter an in-memory (n, d) array to the workers in blocks of ``partition_rows`` rows
        (sent directly, not embedded in a task graph as ``dask.array.from_array`` would)."""
        from ._validation import check_data

        X = check_data(X)
        step = _check_chunk_size("partition_rows", partition_rows)
        blocks = [X[i : i + step] for i in range(0, X.shape[0], step)]
        return cls._from_futures(
            client,
            lambda c: c.scatter(blocks, broadcast=False),
            columns=columns,
            split_every=split_every,
            chunk_size=chunk_size,
        )

    @classmethod
    def _from_futures(cls, client: Any, make_futures, **kwargs: Any) -> "DaskSource":
        """Build a source from the futures ``make_futures(client)`` puts on the workers; a
        Client this call created is owned by the source (closed with it, or on failure)."""
        client_, owned = _resolve_client(client)
        try:
            source = cls(make_futures(client_), client=client_, **kwargs)
        except BaseException:
            if owned:
                client_.close()
            raise
        source._owns_client = owned
        return source

    def _delayed_blocks(self, data: Any, columns: Sequence[str] | None) -> list:
        import dask
        import dask.array as da

        if isinstance(data, da.Array):
            if data.ndim != 2:
                raise ValueError(
                    f"a dask array must be 2-D (n_samples, n_features), got {data.ndim}-D"
                )
            data = data.rechunk({1: -1})
            return [dask.delayed(_as_float_block)(b) for b in data.to_delayed().ravel()]
        import dask.dataframe as dd
        import pandas as pd

        if isinstance(data, dd.DataFrame):
            if columns is not None:
                data = data[list(columns)]
            bad = [
                str(c)
                for c, t in data.dtypes.items()
                if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))
            ]
            if bad:
                raise ValueError(f"column(s) {bad} are not numeric; pass numeric `columns`")
            self.columns = [str(c) for c in data.columns]
            return [dask.delayed(_frame_to_float)(p) for p in data.to_delayed()]
        raise TypeError(
            "DaskSource takes a dask DataFrame, a 2-D dask Array or a list of futures of "
            f"arrays; got {type(data).__name__} (use DaskSource.from_parquet for Parquet)"
        )

    def _inspect(self) -> None:
        """Block lengths and validation, computed on the workers."""
        checks: list[BlockCheck] = self.client.gather(
            self.client.map(BlockCheck.of, self._parts, pure=False)
        )
        if not checks:
            raise ValueError("the Dask collection has no partitions")
        self.n_features = int(checks[0].observed.size)
        if any(c.observed.size != self.n_features for c in checks):
            raise ValueError("partitions disagree on the number of columns")
        lengths = np.array([c.n_rows for c in checks], dtype=np.int64)
        keep = np.flatnonzero(lengths > 0)  # empty partitions carry nothing
        self._parts = [self._parts[i] for i in keep]
        self.lengths = lengths[keep]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.n_samples = int(self.offsets[-1])
        if self.n_samples == 0:
            raise ValueError("the Dask collection has no rows")
        columns = self.columns or [f"column {j}" for j in range(self.n_features)]
        total = checks[0]
        for c in checks[1:]:
            total = total + c
        total.raise_if_invalid(columns, "the Dask data")

    @property
    def n_partitions(self) -> int:
        return len(self._parts)

    def __repr__(self) -> str:
        return (
            f"DaskSource(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"partitions={self.n_partitions})"
        )

    def map_reduce(self, fn: Callable[[FloatArray], T]) -> T:
        futures = self.client.map(
            _apply, [fn] * len(self._parts), self._parts, chunk_size=self.chunk_size, pure=False
        )
        while len(futures) > 1:
            futures = [
                self.client.submit(_sum_all, *futures[i : i + self.split_every], pure=False)
                for i in range(0, len(futures), self.split_every)
            ]
        return futures[0].result()

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        rows = _sample_rows(rng, self.n_samples, size)
        if rows is None:
            return np.concatenate(self.client.gather(self._parts))
        cuts = np.searchsorted(rows, self.offsets)
        pieces = [
            self.client.submit(
                _take_rows, part, rows[cuts[i] : cuts[i + 1]] - self.offsets[i], pure=False
            )
            for i, part in enumerate(self._parts)
            if cuts[i + 1] > cuts[i]
        ]
        return np.concatenate(self.client.gather(pieces))

    def close(self) -> None:
        """Release the persisted blocks (and the Client, if this source created it)."""
        self._parts = []
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> "DaskSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    dask: Any = None,
    batch_size: int = 65536,
    partition_rows: int = 1_000_000,
    chunk_size: int = 16384,
):
    """A source for a Parquet file or folder: streamed locally (``dask=None``), or read on a
    Dask cluster when ``dask`` is a Client or a scheduler address — the one switch a pipeline
    resource needs."""
    if dask is None or dask == "":
        return ParquetSource(path, columns, batch_size, chunk_size)
    return DaskSource.from_parquet(
        path, client=dask, columns=columns, partition_rows=partition_rows, chunk_size=chunk_size
    )
