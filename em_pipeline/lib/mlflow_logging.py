"""MLflow records of a segmentation run (no Dagster imports).

Layout in the tracking store: one *parent* run per partition (run date) in the experiment, tagged
with the Dagster run id, the partition, the asset keys and the em_core version; one *child* run per
(K, covariance type) candidate holding its params, the log-likelihood curve of every restart as the
step metrics ``loglik_restart_<i>`` (step = EM iteration, step 0 = the starting parameters) and the
final ``log_likelihood``, ``bic``, ``aic``, ``icl``, ``n_iter``, ``converged``, and a description
linking the UI's metric page with all its restarts in one chart. The parent holds the
selection table, plots, the model JSON, the input dataset (``mlflow.log_input``, with its digest)
and the pyfunc model, which is registered in the model registry; the publish step then points the
registry alias (default ``champion``) at it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

_BATCH = 1000


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    experiment_name: str = "em-segments"
    artifact_location: str | None = None
    registry_uri: str | None = None
    registered_model_name: str = "customer-segments"
    alias: str = "champion"
    ui_url: str | None = "http://127.0.0.1:5000"

    @property
    def registry(self) -> str:
        """The model registry's URI: ``registry_uri``, else the tracking store."""
        return self.registry_uri or self.tracking_uri


@contextmanager
def mlflow_uris(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow's fluent API at one store for the block, then restore the caller's setting.

    ``log_input``, ``pyfunc.log_model`` and ``pyfunc.load_model`` read process-wide URIs (and
    ``set_tracking_uri`` exports them as environment variables); this library must not leave its
    store there for the code that imported it."""
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def _json_arg(value: Any) -> str:
    """A query-string value as the MLflow UI writes it: compact JSON, percent-encoded."""
    return urllib.parse.quote(json.dumps(value, separators=(",", ":")), safe="")


def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, str):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


#: MLflow 3's UI opens an experiment by its kind; without the tag it may guess "GenAI".
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


class SegmentTracker:
    """Thin wrapper around an :class:`MlflowClient` bound to one tracking store and experiment."""

    def __init__(self, settings: MlflowSettings):
        self.settings = settings
        # the registry explicitly: MlflowClient would otherwise take MLFLOW_REGISTRY_URI from the
        # environment, a store other than the one the model is registered in
        self.client = MlflowClient(settings.tracking_uri, settings.registry)
        exp = self.client.get_experiment_by_name(settings.experiment_name)
        if exp is None:
            self.experiment_id = self.client.create_experiment(
                settings.experiment_name,
                artifact_location=settings.artifact_location,
                tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
            )
        else:
            self.experiment_id = exp.experiment_id
            if EXPERIMENT_KIND_TAG not in exp.tags:
                self.client.set_experiment_tag(
                    self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING
                )

    def _fluent_store(self) -> contextlib.AbstractContextManager[None]:
        return mlflow_uris(self.settings.tracking_uri, self.settings.registry)

    # ------------------------------------------------------------------ runs
    def run_url(self, run_id: str) -> str | None:
        if not self.settings.ui_url:
            return None
        base = self.settings.ui_url.rstrip("/")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def restarts_chart_url(self, run_id: str, n_curves: int) -> str:
        """The MLflow UI's metric page for a candidate run with every ``loglik_restart_<i>`` in
        one chart against the EM iteration (the run page draws each metric in its own chart);
        relative to the UI's root when no ``ui_url`` is set."""
        keys = [f"loglik_restart_{i}" for i in range(n_curves)]
        as_json = {
            "runs": [run_id], "metric": keys[0] if keys else "",
            "experiments": [self.experiment_id], "plot_metric_keys": keys, "plot_layout": {},
            "deselected_curves": [], "last_linear_y_axis_range": [],
        }  # fmt: skip
        plain = {
            "x_axis": "step",
            "y_axis_scale": "linear",
            "line_smoothness": 1,
            "show_point": "false",
        }
        encoded = "&".join(
            [f"{k}={_json_arg(v)}" for k, v in as_json.items()]
            + [f"{k}={v}" for k, v in plain.items()]
        )
        return f"{(self.settings.ui_url or '').rstrip('/')}/#/metric?{encoded}"

    def start_parent_run(self, partition: str, dagster_run_id: str, tags: dict[str, str]) -> str:
        """Create the partition's parent run, or reattach to the one this Dagster run started."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.dagster_run_id = '{dagster_run_id}' and tags.partition = '{partition}' "
                "and tags.em_run_kind = 'selection'"
            ),
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            # a retry of the same step: drop the children of the failed attempt
            for child in self.child_runs(run_id):
                self.client.delete_run(child.info.run_id)
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        all_tags = {
            **tags,
            "dagster_run_id": dagster_run_id,
            "partition": partition,
            "em_run_kind": "selection",
        }
        run = self.client.create_run(
            self.experiment_id, run_name=f"segments-{partition}", tags=all_tags
        )
        return run.info.run_id

    def child_runs(self, parent_run_id: str) -> list:
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=5000,
        )

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    @contextmanager
    def failing_with(self, run_id: str) -> Iterator[None]:
        """Mark the run FAILED when the block raises (whatever the step), then re-raise."""
        try:
            yield
        except BaseException:
            self.finish(run_id, "FAILED")
            raise

    # ------------------------------------------------------------ candidates
    def log_candidate(
        self,
        parent_run_id: str,
        row: dict[str, Any],
        histories: list[list[float]] | None,
        fit_params: dict[str, Any],
        *,
        chosen: bool,
    ) -> str:
        """One child run for a (K, covariance type) candidate with all its restart curves."""
        k, cov = row["n_components"], row["covariance_type"]
        tags = {
            "mlflow.parentRunId": parent_run_id,
            "em_run_kind": "candidate",
            "chosen": str(bool(chosen)).lower(),
            "degenerate": str(bool(row.get("degenerate"))).lower(),
            # warm: this candidate raced the champion's parameters; best_init: the kept start
            "warm_start": str(bool(row.get("warm_start"))).lower(),
            "best_init": str(row.get("best_init") or ""),
        }
        if row.get("failure"):
            tags["failure"] = str(row["failure"])
        if row.get("reason"):  # why it could not be chosen (a failed fit or min_class_size)
            tags["not_eligible"] = str(row["reason"])[:5000]
        if row.get("error"):
            tags["error"] = str(row["error"])[:5000]
        run = self.client.create_run(self.experiment_id, run_name=f"K={k} {cov}", tags=tags)
        run_id = run.info.run_id
        params = {"n_components": k, "covariance_type": cov, **fit_params}
        now = int(time.time() * 1000)
        metrics: list[Metric] = []
        for i, curve in enumerate(histories or []):
            for step, value in enumerate(curve):
                v = _finite(value)
                if v is not None:
                    metrics.append(Metric(f"loglik_restart_{i}", v, now, step))
        for key in (
            "log_likelihood", "bic", "aic", "icl", "n_iter", "n_parameters", "seconds",
            "smallest_class",
        ):  # fmt: skip
            v = _finite(row.get(key))
            if v is not None:
                metrics.append(Metric(key, v, now, 0))
        if row.get("converged") is not None:
            metrics.append(Metric("converged", float(bool(row["converged"])), now, 0))
        n_curves = len(histories or [])
        note = (
            f"Log-likelihood of the {n_curves} restarts against the EM iteration, in one chart: "
            f"[open]({self.restarts_chart_url(run_id, n_curves)})"
        )
        self.client.log_batch(
            run_id,
            params=[Param(p, str(v)) for p, v in params.items()],
            tags=[RunTag("n_restart_curves", str(n_curves))]
            + ([RunTag("mlflow.note.content", note)] if n_curves else []),
        )
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _BATCH])
        failed = row.get("error") or row.get("degenerate")
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
        return run_id

    # ---------------------------------------------------------------- parent
    def log_parent_summary(
        self, run_id: str, params: dict[str, Any], metrics: dict[str, Any], tags: dict[str, str]
    ) -> None:
        self.client.log_batch(
            run_id,
            metrics=[
                Metric(k, v, int(time.time() * 1000), 0)
                for k, raw in metrics.items()
                if (v := _finite(raw)) is not None
            ],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        batch = [
            Metric(k, v, now, 0) for k, raw in metrics.items() if (v := _finite(raw)) is not None
        ]
        for start in range(0, len(batch), _BATCH):
            self.client.log_batch(run_id, metrics=batch[start : start + _BATCH])

    def log_artifacts(self, run_id: str, paths: Iterable[Path], artifact_path: str) -> None:
        for p in paths:
            self.client.log_artifact(run_id, str(p), artifact_path)

    def log_table(self, run_id: str, df: pd.DataFrame, name: str, artifact_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / f"{name}.csv"
            df.to_csv(csv, index=False)
            self.client.log_artifact(run_id, str(csv), artifact_path)

    def log_dataset(self, run_id: str, df: pd.DataFrame, source: str, name: str) -> str:
        """Log the input snapshot as a dataset input of the run; returns its digest."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "source can be interpreted in ..."
            dataset = mlflow.data.from_pandas(df, source=source, name=name)
        with (
            self._fluent_store(),
            mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
        ):
            mlflow.log_input(dataset, context="training")
        self.client.update_run(run_id, status="RUNNING")
        return dataset.digest

    def log_pyfunc_model(
        self,
        run_id: str,
        bundle_path: Path,
        input_example: pd.DataFrame,
        output_example: pd.DataFrame,
        code_paths: list[str],
        pip_requirements: list[str],
    ) -> tuple[str, str | None]:
        """Log the scoring model (from code, no pickle) and register it; (model_uri, version)."""
        from mlflow.models import infer_signature

        model_file = Path(__file__).with_name("pyfunc_model.py")
        signature = infer_signature(input_example, output_example)
        with (
            self._fluent_store(),
            mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),  # "Successfully registered model …"
        ):
            # hints about integer output columns, type hints and input examples do not apply:
            # the signature is given explicitly and the segment id is never missing
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(
                name="segment_model",
                python_model=str(model_file),
                artifacts={"segment_bundle": str(bundle_path)},
                code_paths=code_paths,
                signature=signature,
                pip_requirements=pip_requirements,
                registered_model_name=self.settings.registered_model_name,
            )
        self.client.update_run(run_id, status="RUNNING")
        version = info.registered_model_version
        return info.model_uri, None if version is None else str(version)

    def alias_version(self) -> str | None:
        """The model version the registry alias points to, or None if it is not set."""
        try:
            mv = self.client.get_model_version_by_alias(
                self.settings.registered_model_name, self.settings.alias
            )
        except MlflowException:
            return None
        return str(mv.version)

    def version_run_id(self, version: str) -> str | None:
        """The MLflow run that produced model ``version``, or None if there is no such version."""
        try:
            mv = self.client.get_model_version(self.settings.registered_model_name, version)
        except MlflowException:
            return None
        return mv.run_id

    def set_alias(self, version: str) -> None:
        self.client.set_registered_model_alias(
            self.settings.registered_model_name, self.settings.alias, version
        )
