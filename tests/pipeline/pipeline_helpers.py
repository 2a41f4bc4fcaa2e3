"""Helpers to run the real pipeline (Dagster + MLflow on SQLite + DuckDB) in a temp folder."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from em_pipeline.defs.resources import default_resources

RUN_DATE = "2024-05-01"
N_CUSTOMERS = 300
# the log-normal sample: its four segments hold still from night to night at 300 customers with
# the fast sweep (K <= 4), so the mechanics tests do not trip the drift gates; the order
# generator (the source's default) is tested where its segments can be found: 2,000 customers
# and more, the CLI's sweep (test_segments_quality, test_merged_segments, test_sample_orders)
GENERATOR = "lognormal"
# small sweep so the whole pipeline test suite stays fast
FAST_CONFIG = {
    "ops": {
        "imputed_customers": {"config": {"k_max": 3, "n_init": 1, "max_iter": 100}},
        "segment_model": {
            # k_limit: None keeps K to 1..4 (the K-range extension is tested in
            # test_segments_quality, test_merged_segments and tests/core/test_k_extension.py)
            "config": {"k_min": 1, "k_max": 4, "n_init": 2, "max_iter": 200, "k_limit": None}
        },
    }
}


def load_defs() -> dg.Definitions:
    from em_pipeline.definitions import defs

    return defs()


def run_pipeline(
    home: Path,
    run_date: str = RUN_DATE,
    *,
    drop_dir: str | None = None,
    resources: dict | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = False,
    selection: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialise every asset and check of the definitions for one partition."""
    d = load_defs()
    res = default_resources(
        home=home, drop_dir=drop_dir, n_customers=N_CUSTOMERS, seed=7, generator=GENERATOR
    )
    res.update(resources or {})
    cfg = {"ops": {**FAST_CONFIG["ops"], **((run_config or {}).get("ops", {}))}}
    return dg.materialize(
        [*d.assets, *d.asset_checks],
        resources=res,
        partition_key=run_date,
        run_config=cfg,
        raise_on_error=raise_on_error,
        selection=selection,
    )


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    """Errors of failed steps and of failures outside a step (e.g. a resource's set-up)."""
    errors = []
    for e in result.all_events:
        error = getattr(e.event_specific_data, "error", None)
        if e.is_step_failure:
            errors.append(e.step_failure_data.error.to_string())
        elif error is not None:
            errors.append(error.to_string())
    return "\n".join(errors)
