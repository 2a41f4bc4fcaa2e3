"""The committed reference harness: ten public datasets with mclust 6.0 and scikit-learn fits
(made by scripts/reference/; tests never need R)."""

import json
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parent / "reference"
DATASETS = (
    "quakes", "swiss", "usarrests", "trees", "mtcars", "lifecyclesavings",
    "gvhd_pos", "euro_unemployment", "wine", "breast_cancer",
)  # fmt: skip
SKLEARN_NAMES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}


@cache
def load_dataset(name: str) -> np.ndarray:
    return np.loadtxt(ROOT / "data" / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)


@cache
def mclust_cells() -> dict:
    return json.loads((ROOT / "mclust_bic.json").read_text())


@cache
def sklearn_cells() -> dict:
    return json.loads((ROOT / "sklearn_bic.json").read_text())


@cache
def fixed_points() -> dict:
    return json.loads((ROOT / "mclust_fixed_points.json").read_text())


def best_known(name: str, prior: bool = False) -> dict[tuple[str, int], float]:
    """Per (model, G) the best reference log-likelihood: mclust's, and (without a prior)
    scikit-learn's non-degenerate n_init=10 fit where the model is one of its four."""
    ref = mclust_cells()["datasets"][name]["prior" if prior else "noprior"]
    best = {(m, int(g)): c["loglik"] for m, cells in ref.items() for g, c in (cells or {}).items()}
    if not prior:
        for ct, cells in sklearn_cells()[name]["cells"].items():
            for g, c in cells.items():
                if c["degenerate"]:
                    continue
                key = (SKLEARN_NAMES[ct], int(g))
                best[key] = max(best.get(key, -np.inf), c["loglik"])
    return best


def compare_sweep(name: str, prior: bool, table: list[dict], slack: float = 1e-3) -> dict:
    """A select_model table against the best-known log-likelihoods of dataset ``name``.

    Returns the cells below best − slack·n (``below``: (model, G, gap)), the degenerate and the
    otherwise failed cells that have a reference ((model, G, error)), the cells above
    best + slack·n, and the BIC choices (model, G) of
    em_core and of the best-known likelihoods (mclust's sign: 2 log L − npar log n, higher wins).
    """
    X = load_dataset(name)
    n = X.shape[0]
    best = best_known(name, prior)
    npar = {(m, int(g)): c["npar"] for m, cells in _mclust_side(name, prior).items()
            for g, c in (cells or {}).items()}  # fmt: skip
    below, above, degenerate, failed, reached = [], [], [], [], 0
    ours = {}
    for row in table:
        key = (row["model"], int(row["n_components"]))
        if key not in best:
            continue
        if row["log_likelihood"] is None:
            (degenerate if row["degenerate"] else failed).append((*key, row["error"]))
            continue
        gap = row["log_likelihood"] - best[key]
        ours[key] = row["log_likelihood"]
        if gap < -slack * n:
            below.append((*key, round(gap, 4)))
        else:
            reached += 1
        if gap > slack * n:
            above.append((*key, round(gap, 4)))

    def choice(ll: dict) -> tuple[str, int]:
        return max(ll, key=lambda k: 2 * ll[k] - npar[k] * np.log(n))

    return dict(
        n=n, cells=len(best), reached=reached, below=below, above=above,
        degenerate=degenerate, failed=failed, choice=choice(ours) if ours else None,
        best_choice=choice(best),
    )  # fmt: skip


def _mclust_side(name: str, prior: bool) -> dict:
    return mclust_cells()["datasets"][name]["prior" if prior else "noprior"]
