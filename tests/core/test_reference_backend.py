"""Without numba, em_core runs its numpy references (:mod:`em_core.reference`): every E-step,
iterative M-step and the hierarchical start. Fitted in a process with ``EM_CORE_DISABLE_NUMBA=1``,
every one of the 14 models on data with missing cells reaches the compiled path's optimum."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from em_core import GaussianMixture
from em_core._fast_kernels import HAVE_NUMBA
from em_core.models import MODEL_NAMES

_FITS = """
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
sys.path.insert(0, {tests!r})
from em_core import _fast_kernels, GaussianMixture
from em_core.models import MODEL_NAMES
from test_reference_backend import sample

assert not _fast_kernels.HAVE_NUMBA
print(json.dumps({{m: GaussianMixture(3, covariance_type=m, n_init=2, random_state=0)
                  .fit(sample()).score(sample()) for m in MODEL_NAMES}}))
"""


def sample() -> np.ndarray:
    """Three groups in 3-D, 10 % of the cells missing at random (no row wholly missing)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    X = np.concatenate([rng.normal(c, 0.5 + i * 0.3, (120, 3)) for i, c in enumerate(centres)])
    missing = rng.random(X.shape) < 0.1
    X[missing & ~missing.all(axis=1, keepdims=True)] = np.nan
    return X


@pytest.mark.skipif(not HAVE_NUMBA, reason="compares the compiled path with the numpy one")
def test_the_numpy_references_fit_every_model_as_the_kernels_do():
    env = {**os.environ, "EM_CORE_DISABLE_NUMBA": "1"}
    tests = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", _FITS.format(tests=tests)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    in_numpy = json.loads(out.stdout.strip().splitlines()[-1])
    X = sample()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = {
            m: GaussianMixture(3, covariance_type=m, n_init=2, random_state=0).fit(X).score(X)
            for m in MODEL_NAMES
        }
    assert set(in_numpy) == set(MODEL_NAMES)
    for model in MODEL_NAMES:
        assert in_numpy[model] == pytest.approx(compiled[model], rel=1e-9, abs=0), model
