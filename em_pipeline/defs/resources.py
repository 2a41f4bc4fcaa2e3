"""Resources: where the drop comes from, the customer schema, local storage, warehouse, MLflow.

Each is a typed :class:`dagster.ConfigurableResource`; assets take them as parameters. Defaults come
from :mod:`em_pipeline.settings` (environment variables) so ``dagster dev`` and ``python -m
em_pipeline`` write under one home folder; tests build their own with :func:`default_resources`.
"""

import datetime as dt
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr

from em_core import configure_threads
from em_pipeline import settings
from em_pipeline.lib.home_lock import hold_home
from em_pipeline.lib.mlflow_logging import MlflowSettings, SegmentTracker
from em_pipeline.lib.published_versions import PublishedLayout, recover
from em_pipeline.lib.sample_data import Generator, SampleDrop, write_sample_drop
from em_pipeline.lib.schema import DEFAULT_FEATURES, TRANSFORMS, CustomerSchema, Feature
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.warehouse import PublishResult, publish_tables, read_table_if_exists

CHAMPION_TABLE = "segment_champion"
REGISTRY_TABLE = "segment_registry"

# ---------------------------------------------------------------------------------------- source


class CustomerSource(dg.ConfigurableResource, ABC):
    """Where the customer drop of a run date is found."""

    @abstractmethod
    def drop_folder(self, run_date: str) -> Path:
        """The folder of CSV/Parquet files for ``run_date`` (YYYY-MM-DD)."""

    def describe(self) -> str:
        return type(self).__name__


class FolderCustomerSource(CustomerSource):
    """A real drop: a folder of CSV and/or Parquet files per run date."""

    drop_dir: str = Field(
        description="Drop folder. '{run_date}' in the path is replaced by the partition date "
        "(e.g. /data/drops/{run_date}); without it the same folder is read for every date."
    )

    def drop_folder(self, run_date: str) -> Path:
        return Path(self.drop_dir.replace("{run_date}", run_date)).expanduser()

    def describe(self) -> str:
        return f"folder {self.drop_dir}"


class SampleCustomerSource(CustomerSource):
    """Built-in deterministic sample drop, written to ``<root>/<run_date>/`` before it is read.

    Every run date sees the same base population (``n_customers``, ``seed``) in a different row
    order, with ``daily_new_share`` new customers and ``daily_leaving_share`` customers left out,
    both chosen deterministically from the date: consecutive nights look like a real customer base.
    """

    root: str = Field(description="Folder under which the sample drop of each run date is written.")
    n_customers: int = Field(default=2000, description="Number of good sample customers.")
    seed: int = Field(default=0, description="Seed of the sample generator.")
    missing_rate: float = Field(default=0.10, description="Share of feature cells left empty.")
    generator: Generator = Field(
        default="orders",
        description="'orders': simulated order histories (one-time buyers, occasional buyers, "
        "loyal regulars, bulk buyers; integer orders and items, refunds, whales); 'lognormal': "
        "four log-normal segments, close to Gaussian after log1p.",
    )
    daily_new_share: float = Field(
        default=0.03, ge=0, le=1, description="New customers per run date, as a share."
    )
    daily_leaving_share: float = Field(
        default=0.02, ge=0, lt=1, description="Base customers absent per run date, as a share."
    )

    def write(self, run_date: str) -> SampleDrop:
        """Write the sample drop of ``run_date`` and return it with its ground truth."""
        night = (dt.date.fromisoformat(run_date) - dt.date(2000, 1, 1)).days
        return write_sample_drop(
            Path(self.root) / run_date,
            n_customers=self.n_customers,
            seed=self.seed,
            missing_rate=self.missing_rate,
            shuffle_seed=night,
            n_new=round(self.daily_new_share * self.n_customers),
            n_leaving=round(self.daily_leaving_share * self.n_customers),
            night=night,
            generator=self.generator,
        )

    def drop_folder(self, run_date: str) -> Path:
        return self.write(run_date).folder

    def describe(self) -> str:
        return f"built-in sample data (n={self.n_customers}, seed={self.seed})"


# ---------------------------------------------------------------------------------------- schema


class CustomerSchemaResource(dg.ConfigurableResource):
    """The columns of a drop and the documented feature transform."""

    id_column: str = Field(default="customer_id", description="Column holding the customer id.")
    features: list[str] = Field(
        default=[f.name for f in DEFAULT_FEATURES],
        description="Numeric behaviour features, in model order.",
    )
    log1p_features: list[str] = Field(
        default=[f.name for f in DEFAULT_FEATURES if f.transform == "log1p"],
        description="Skewed money/count features transformed with log1p before standardising.",
    )
    log_features: list[str] = Field(
        default=[f.name for f in DEFAULT_FEATURES if f.transform == "log"],
        description="Rates and durations transformed with log(x + c), c = half the smallest "
        "positive value, before standardising (log1p's +1 would flatten rates below 1).",
    )
    mixture_power_transform: bool = Field(
        default=True,
        description="Transform every feature not pinned in pinned_transforms by a power "
        "transform whose λ is estimated within a Gaussian mixture (em_core.power_within: "
        "Box-Cox when all values are positive, signed Yeo-Johnson otherwise; the λ that makes "
        "the mixture's components Gaussian, not the whole feature). False: power_transform, "
        "else log_features / log1p_features / the identity.",
    )
    power_transform: bool = Field(
        default=False,
        description="With mixture_power_transform false: transform every feature not pinned by "
        "a power transform with λ by maximum likelihood on the feature alone (Box-Cox when all "
        "values are positive, Yeo-Johnson otherwise) instead of log1p_features / the identity.",
    )
    pinned_transforms: dict[str, str] = Field(
        default={},
        description="Per-feature transform that overrides the others: 'mixture', 'auto', "
        "'boxcox', 'yeojohnson', 'signed_yeojohnson', 'log', 'log1p' or 'none'.",
    )
    allow_negative: list[str] = Field(
        default=[f.name for f in DEFAULT_FEATURES if not f.nonnegative],
        description="Features that may be negative; a negative value elsewhere is quarantined.",
    )
    max_value: float = Field(
        default=1e12,
        gt=0,
        description="Largest plausible |value| of any feature; a row with a larger one is "
        "quarantined (out_of_range), so one absurd value cannot overflow a feature's scale.",
    )
    label_feature: str = Field(
        default="total_spend",
        description="Feature whose segment mean orders segment ids and names the labels.",
    )

    def get(self) -> CustomerSchema:
        named = [
            *self.log1p_features, *self.log_features, *self.allow_negative,
            *self.pinned_transforms,
        ]  # fmt: skip
        unknown = sorted(set(named) - set(self.features))
        if unknown:
            raise ValueError(
                "log1p_features/log_features/allow_negative/pinned_transforms name unknown "
                f"features {unknown}"
            )
        bad = {k: v for k, v in self.pinned_transforms.items() if v not in TRANSFORMS}
        if bad:
            raise ValueError(f"pinned_transforms {bad}: each must be one of {TRANSFORMS}")
        return CustomerSchema(
            id_column=self.id_column,
            features=tuple(
                Feature(name, self._transform(name), name not in self.allow_negative)
                for name in self.features
            ),
            label_feature=self.label_feature,
            max_value=self.max_value,
        )

    def _transform(self, name: str) -> str:
        if name in self.pinned_transforms:
            return self.pinned_transforms[name]
        if self.mixture_power_transform:
            return "mixture"
        if self.power_transform:
            return "auto"
        if name in self.log_features:
            return "log"
        return "log1p" if name in self.log1p_features else "none"


# --------------------------------------------------------------------------------------- storage


class PipelineStorage(dg.ConfigurableResource):
    """Local working files of each partition: ``<home>/runs/<run_date>/``.

    While a run uses it, the resource holds the home's run lock (:mod:`em_pipeline.lib.home_lock`):
    a second run on the same home fails at once, or after ``lock_wait_seconds``, naming the first.
    """

    home: str = Field(description="Home folder of the pipeline (absolute path).")
    lock_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        description="How long a run waits for another run on the same home to finish before "
        "failing (0 = fail at once).",
    )
    _lock: ExitStack | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        stack = ExitStack()
        stack.enter_context(
            hold_home(
                self.home,
                wait_seconds=self.lock_wait_seconds,
                run_date=None if run is None else run.tags.get("dagster/partition"),
                dagster_run_id=None if run is None else run.run_id,
                command=" ".join(sys.argv),
            )
        )
        self._lock = stack

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def partition_dir(self, run_date: str) -> Path:
        d = Path(self.home) / "runs" / run_date
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, run_date: str, name: str) -> Path:
        return self.partition_dir(run_date) / name

    def write_parquet(self, df: pd.DataFrame, run_date: str, name: str) -> Path:
        final = self.path(run_date, name)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, final)
        return final

    def read_parquet(self, run_date: str, name: str) -> pd.DataFrame:
        p = self.path(run_date, name)
        if not p.exists():
            raise FileNotFoundError(
                f"{p} is missing: materialise the upstream asset for partition {run_date} first"
            )
        return pd.read_parquet(p)

    def write_json(self, obj: Any, run_date: str, name: str) -> Path:
        final = self.path(run_date, name)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(obj, indent=1, default=str))
        os.replace(tmp, final)
        return final

    def read_json(self, run_date: str, name: str) -> Any:
        return json.loads(self.path(run_date, name).read_text())


# ------------------------------------------------------------------------------------- warehouse


@dataclass(frozen=True)
class Champion:
    """The model behind the published tables, as stored in the warehouse by the last promotion."""

    bundle: SegmentBundle
    run_date: str
    model_version: str
    registry: pd.DataFrame | None
    mlflow_run_id: str = ""
    promoted_at: str = ""


class Warehouse(dg.ConfigurableResource):
    """BI outputs: Parquet files and an embedded DuckDB file, replaced atomically.

    The champion model (the one whose outputs BI reads) is stored *in the warehouse*, in the
    one-row table ``segment_champion`` (model JSON + run date + registry version), written in the
    same transaction as the tables it produced. It is therefore always the model behind the
    published tables, even if moving the MLflow alias failed or the tracking server is down.
    """

    duckdb_path: str = Field(
        description="DuckDB warehouse path that BI tools open (a link to the current version)."
    )
    parquet_dir: str = Field(
        description="Folder of the published Parquet tables (links into current/ and the "
        "versions/ they point to)."
    )
    keep_versions: int = Field(
        default=2,
        ge=1,
        description="Published versions kept on disk (the current one and older ones), so a "
        "reader that opened yesterday's files can finish reading them.",
    )

    def before_commit(self, con: duckdb.DuckDBPyConnection) -> None:
        """Hook run inside the publish transaction just before COMMIT (no-op; for extensions)."""

    def publish(
        self,
        run_date: str,
        current: dict[str, pd.DataFrame],
        history: dict[str, pd.DataFrame],
        derived: dict[str, str] | None = None,
    ) -> PublishResult:
        return publish_tables(
            self.parquet_dir,
            self.duckdb_path,
            run_date,
            current,
            history,
            derived=derived,
            before_commit=self.before_commit,
            keep_versions=self.keep_versions,
        )

    def recover(self) -> list[Path]:
        """Repair what a crashed publish left behind; returns the leftovers removed."""
        return recover(PublishedLayout.of(self.parquet_dir, self.duckdb_path), self.keep_versions)

    def read(self, name: str) -> pd.DataFrame | None:
        """A published table (read-only connection), or None if it does not exist yet."""
        return read_table_if_exists(self.duckdb_path, name)

    def published_run_dates(self) -> list[str]:
        """Every published run date, ascending."""
        runs = self.read("segment_runs")
        if runs is None:
            return []
        return sorted({str(d)[:10] for d in runs["run_date"]})

    def read_history(self, name: str, run_date: str) -> pd.DataFrame | None:
        """The rows of history table ``name`` published for ``run_date``."""
        table = self.read(name)
        if table is None:
            return None
        return table[table["run_date"].astype(str).str[:10] == run_date].reset_index(drop=True)

    def expect_champion(self, run_date: str | None) -> Champion | None:
        """The current champion, failing the step unless it is the one of ``run_date`` (the
        champion ``segment_model`` aligned to): another run promoted in between."""
        champion = self.load_champion()
        if (None if champion is None else champion.run_date) != run_date:
            raise dg.Failure(
                f"the champion changed since segment_model ran (was {run_date}, now "
                f"{None if champion is None else champion.run_date}): re-run from segment_model"
            )
        return champion

    def load_champion(self) -> Champion | None:
        """The current champion, or None before the first promotion."""
        row = self.read(CHAMPION_TABLE)
        if row is None or row.empty:
            return None
        r = row.iloc[0]
        return Champion(
            bundle=SegmentBundle.from_json(str(r["model_json"])),
            run_date=str(r["run_date"])[:10],
            model_version=str(r["model_version"] or ""),
            registry=self.read(REGISTRY_TABLE),
            mlflow_run_id=str(r["mlflow_run_id"] or ""),
            promoted_at=pd.Timestamp(r["promoted_at"]).isoformat() + "Z",
        )


# ---------------------------------------------------------------------------------------- mlflow


class MlflowTracker(dg.ConfigurableResource):
    """MLflow tracking and model registry (default: a local SQLite file, no server)."""

    tracking_uri: str = Field(description="Tracking URI, e.g. sqlite:////abs/path/mlflow.db.")
    registry_uri: str = Field(default="", description="Registry URI; empty = tracking URI.")
    experiment_name: str = Field(default="em-segments", description="MLflow experiment.")
    artifact_location: str = Field(
        default="", description="Artifact root for a new experiment; empty = MLflow's default."
    )
    registered_model_name: str = Field(
        default="customer-segments", description="Registered model of the scoring pyfunc model."
    )
    alias: str = Field(
        default="champion", description="Registry alias moved to the published model version."
    )
    ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description="Base URL of the MLflow UI, used for run links in Dagster metadata.",
    )

    def tracker(self) -> SegmentTracker:
        return SegmentTracker(
            MlflowSettings(
                tracking_uri=self.tracking_uri,
                experiment_name=self.experiment_name,
                artifact_location=self.artifact_location or None,
                registry_uri=self.registry_uri or None,
                registered_model_name=self.registered_model_name,
                alias=self.alias,
                ui_url=self.ui_url or None,
            )
        )


class ComputeBackend(dg.ConfigurableResource):
    """Where the EM E-steps of the model selection run: in this process (default) or on a Dask
    cluster. With a scheduler address the feature matrix is scattered to the workers as a Dask
    array (``partition_rows`` rows per block), every E-step summary is computed there and
    tree-reduced, and only the M-step runs here; the fit equals the in-memory one. Workers need
    the same Python environment (em_core importable). In memory, ``n_jobs`` worker processes
    fit the candidates in parallel."""

    dask_scheduler_address: str = Field(
        default="",
        description="Dask scheduler address, e.g. tcp://scheduler:8786; empty = in memory.",
    )
    partition_rows: int = Field(default=1_000_000, description="Rows per Dask block.")
    n_jobs: int = Field(
        default=1,
        description="In memory: worker processes fitting the model-selection candidates in "
        "parallel (1 = serial, -1 = every core; env EM_SEGMENTS_N_JOBS). Ignored with a Dask "
        "scheduler, whose workers already parallelise the E-steps.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        configure_threads()  # before the step's first fit starts the kernels' thread pool

    @property
    def name(self) -> str:
        if self.dask_scheduler_address:
            return f"dask ({self.dask_scheduler_address})"
        return "memory" if self.n_jobs == 1 else f"memory, n_jobs={self.n_jobs}"

    @property
    def selection_n_jobs(self) -> int:
        """``n_jobs`` for ``em_core.select_model``: 1 on a Dask cluster."""
        return 1 if self.dask_scheduler_address else self.n_jobs

    @contextmanager
    def data(self, X: np.ndarray) -> Iterator[Any]:
        """The matrix to hand to ``em_core.select_model``: X itself, or a DaskSource."""
        if not self.dask_scheduler_address:
            yield X
            return
        from em_core import DaskSource

        source = DaskSource.from_array(
            X, client=self.dask_scheduler_address, partition_rows=max(1, self.partition_rows)
        )
        try:
            yield source
        finally:
            source.close()


# --------------------------------------------------------------------------------------- wiring


def default_resources(
    home: str | os.PathLike | None = None, drop_dir: str | None = None, **sample: Any
) -> dict[str, dg.ConfigurableResource]:
    """All resources under one home folder; the sample source unless a drop folder is given."""
    home_path = settings.home_dir(home)
    drop_dir = drop_dir if drop_dir is not None else os.environ.get(settings.DROP_DIR_ENV)
    source: CustomerSource
    if drop_dir:
        source = FolderCustomerSource(drop_dir=str(drop_dir))
    else:
        source = SampleCustomerSource(root=str(home_path / "drops" / "sample"), **sample)
    return {
        "source": source,
        "customer_schema": CustomerSchemaResource(),
        "storage": PipelineStorage(home=str(home_path)),
        "warehouse": Warehouse(
            duckdb_path=str(home_path / "warehouse.duckdb"),
            parquet_dir=str(home_path / "published"),
        ),
        "mlflow_tracker": MlflowTracker(
            tracking_uri=settings.mlflow_tracking_uri(home_path),
            artifact_location=(home_path / "mlartifacts").as_uri(),
        ),
        "compute": ComputeBackend(
            dask_scheduler_address=settings.dask_scheduler_address(), n_jobs=settings.n_jobs()
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
