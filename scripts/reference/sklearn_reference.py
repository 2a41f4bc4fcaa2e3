"""scikit-learn GaussianMixture(n_init=10) on the reference datasets, for em_core's tests.

    .venv/bin/python scripts/reference/sklearn_reference.py

Writes tests/core/reference/sklearn_bic.json: per dataset, covariance type and K the
log-likelihood, BIC (scikit-learn's sign), parameter count and whether the fit is degenerate
(a component with mass below em_core's minimum, or an un-regularised covariance eigenvalue below
1e-5 in units of the data's column variances: the reg_covar floor, not an optimum).
"""

import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture

ROOT = Path(__file__).resolve().parents[2] / "tests" / "core" / "reference"
DATASETS = (
    "quakes", "swiss", "usarrests", "trees", "mtcars", "lifecyclesavings",
    "gvhd_pos", "euro_unemployment", "wine", "breast_cancer",
)  # fmt: skip
REG = 1e-6


def degenerate(gm: GaussianMixture, X: np.ndarray) -> bool:
    d = gm.means_.shape[1]
    mass = gm.predict_proba(X).sum(axis=0)
    need = d + 1 if gm.covariance_type == "full" else (1 if gm.covariance_type == "tied" else 2)
    if mass.min() < need:
        return True
    scale = np.sqrt(X.var(axis=0))
    cov = gm.covariances_
    if gm.covariance_type in ("full", "tied"):
        cov = cov if cov.ndim == 3 else cov[None]
        eig = np.linalg.eigvalsh((cov - REG * np.eye(d)) / np.outer(scale, scale))[:, 0]
    elif gm.covariance_type == "diag":
        eig = ((cov - REG) / scale**2).min(axis=1)
    else:
        eig = (cov - REG) / np.mean(scale**2)
    return bool(eig.min() < 1e-5)


def main() -> None:
    out = {"meta": {"sklearn": __import__("sklearn").__version__, "n_init": 10, "seed": 0}}
    for name in DATASETS:
        X = np.loadtxt(ROOT / "data" / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)
        started = time.perf_counter()
        cells = {}
        for ct in ("full", "tied", "diag", "spherical"):
            cells[ct] = {}
            for k in range(1, 10):
                gm = GaussianMixture(
                    k, covariance_type=ct, n_init=10, random_state=0, max_iter=1000,
                    tol=1e-6, reg_covar=REG,
                )  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gm.fit(X)
                cells[ct][str(k)] = {
                    "loglik": float(gm.score(X) * X.shape[0]),
                    "bic": float(gm.bic(X)),
                    "npar": int(gm._n_parameters()),
                    "converged": bool(gm.converged_),
                    "degenerate": degenerate(gm, X),
                }
        out[name] = {"cells": cells, "seconds": time.perf_counter() - started}
        print(name, f"{out[name]['seconds']:.1f}s", flush=True)
    (ROOT / "sklearn_bic.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
