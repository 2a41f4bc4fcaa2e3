"""em_pipeline.lib.segment_fit on its own (no Dagster run): inputs, settings, progress lines."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from em_core import GaussianMixture
from em_pipeline.lib.artifacts import imputed_flag
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.segment_fit import (
    InputMismatch,
    SweepSettings,
    candidate_line,
    model_inputs,
    selection_frame,
)
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.transforms import FeatureTransform

SCHEMA = CustomerSchema()
NAMES = SCHEMA.feature_names


def _tables(n: int = 40):
    rng = np.random.default_rng(0)
    raw = pd.DataFrame(np.exp(rng.normal(size=(n, len(NAMES)))), columns=NAMES)
    raw.iloc[3, 1] = np.nan
    raw.insert(0, "customer_id", [f"C{i}" for i in range(n)])
    transform = FeatureTransform.fit(raw, SCHEMA)
    features = pd.DataFrame(transform.transform(raw), columns=NAMES)
    features.insert(0, "customer_id", raw["customer_id"])
    imputed = raw.copy()
    for f in NAMES:
        imputed[imputed_flag(f)] = raw[f].isna()
    return raw, features, imputed, transform


def test_first_night_fits_tonights_features_and_mismatches_are_named():
    raw, features, imputed, transform = _tables()
    inputs = model_inputs(SCHEMA, features, imputed, raw, transform.to_dict(), None)
    np.testing.assert_array_equal(inputs.X, features[NAMES].to_numpy())
    assert "first model" in inputs.note
    bad = imputed.copy()
    bad[imputed_flag(NAMES[1])] = False
    with pytest.raises(InputMismatch, match="imputed_customers does not match"):
        model_inputs(SCHEMA, features, bad, raw, transform.to_dict(), None)


def test_with_a_champion_the_fit_runs_in_its_feature_space():
    raw, features, imputed, transform = _tables()
    old = raw.copy()
    old[NAMES] = old[NAMES] * 3.0  # the champion saw other scales
    champion_transform = FeatureTransform.fit(old, SCHEMA)
    model = GaussianMixture(1).fit(champion_transform.transform(old))
    bundle = SegmentBundle.build(model, SCHEMA, champion_transform, {})
    champion = SimpleNamespace(bundle=bundle, run_date="2024-04-30", model_version="3")
    inputs = model_inputs(SCHEMA, features, imputed, raw, transform.to_dict(), champion)
    np.testing.assert_allclose(inputs.X, champion_transform.transform(raw))
    assert "2024-04-30" in inputs.note and "its feature space" in inputs.note
    other = SimpleNamespace(
        bundle=SimpleNamespace(schema=SimpleNamespace(feature_names=["x"])), run_date="d"
    )
    with pytest.raises(InputMismatch, match="fresh warehouse"):
        model_inputs(SCHEMA, features, imputed, raw, transform.to_dict(), other)


def test_settings_from_config_and_the_progress_line():
    config = SimpleNamespace(
        k_min=2, k_max=4, covariance_types=["full", "diag", "full"], criterion="bic", n_init=2,
        seed=0, tol=1e-6, max_iter=50, reg_covar=1e-6, init="auto", prior="none",
        min_class_size=1, n_screen=3, acceleration="squarem", segments="merged", k_limit=16,
    )  # fmt: skip
    settings = SweepSettings.from_config(config)
    assert settings.fit_params()["acceleration"] == "squarem"
    assert settings.k_limit == 16 and "up to K=16" in settings.describe(np.ones((3, 1)), "", "")
    components = SimpleNamespace(**{**vars(config), "segments": "components"})
    assert SweepSettings.from_config(components).k_limit is None  # components are segments
    assert settings.n_components == (2, 3, 4) and settings.covariance_types == ("full", "diag")
    assert settings.fit_params()["n_screen"] == 3
    with pytest.raises(ValueError, match="k_max"):
        SweepSettings.from_config(SimpleNamespace(**{**vars(config), "k_max": 1}))
    row = {
        "index": 0, "total": 6, "n_components": 3, "covariance_type": "full", "bic": None,
        "failure": "empty_component", "reason": "component 2 is empty", "seconds": 0.25,
    }  # fmt: skip
    assert candidate_line(row, "bic") == (
        "[1/6] K=3 full: bic=n/a empty_component: component 2 is empty (0.2s)"
    )


def test_selection_frame_types_and_marks_the_chosen_candidate():
    table = [
        {"n_components": 1, "covariance_type": "full", "log_likelihood": -10.0, "bic": 25.0,
         "aic": 24.0, "icl": 25.0, "seconds": 0.1, "error": None, "failure": None,
         "reason": None, "best_init": "hierarchical", "smallest_class": 40, "eligible": True,
         "warm_start": False, "degenerate": False},
        {"n_components": 2, "covariance_type": "full", "log_likelihood": None, "bic": None,
         "aic": None, "icl": None, "seconds": 0.2, "error": "empty", "failure": "empty_component",
         "reason": "empty", "best_init": None, "smallest_class": None, "eligible": False,
         "warm_start": False, "degenerate": True},
    ]  # fmt: skip
    df = selection_frame(table, (1, "full"))
    assert df["chosen"].tolist() == [True, False]
    assert str(df["smallest_class"].dtype) == "Int64" and pd.isna(df["smallest_class"][1])
    assert df["bic"].dtype == "float64" and np.isnan(df["bic"][1])


def test_the_sweep_screens_k_means_starts_when_configured():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (150, 2)), rng.normal(5, 1, (150, 2))])
    config = SimpleNamespace(
        k_min=2, k_max=2, covariance_types=["full"], criterion="bic", n_init=2, seed=0,
        tol=1e-6, max_iter=50, reg_covar=1e-6, init="auto", prior="none", min_class_size=1,
        n_screen=4, acceleration="none", segments="merged", k_limit=None,
    )  # fmt: skip
    outcome = SweepSettings.from_config(config).run(X, None, 1, lambda row: None)
    restarts = outcome.result.models[(2, "full")].restarts_
    assert [r["screened"] for r in restarts] == [1, 4]  # hierarchical, then screened k-means++
    assert all(r["accelerated"] == 0 for r in restarts)


def test_the_sweep_accelerates_em_when_configured():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(2.5, 1, (200, 2))])
    config = SimpleNamespace(
        k_min=2, k_max=3, covariance_types=["full", "diag"], criterion="bic", n_init=1, seed=0,
        tol=1e-8, max_iter=500, reg_covar=1e-6, init="auto", prior="default", min_class_size=1,
        n_screen=1, acceleration="squarem", segments="merged", k_limit=None,
    )  # fmt: skip
    fast = SweepSettings.from_config(config).run(X, None, 1, lambda row: None).result
    plain_config = SimpleNamespace(**{**vars(config), "acceleration": "none"})
    plain = SweepSettings.from_config(plain_config).run(X, None, 1, lambda row: None).result
    steps = [s for gm in fast.models.values() for s in gm.history_steps_[gm.best_restart_]]
    assert "squarem" in steps
    for key, gm in plain.models.items():
        assert fast.models[key].log_likelihood_ == pytest.approx(gm.log_likelihood_, rel=1e-6)
