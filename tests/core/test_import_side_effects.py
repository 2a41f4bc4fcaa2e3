"""Importing the library changes nothing in the importing process: no environment variables, no
plotting backend, no MLflow store; the thread policy is an explicit call."""

import json
import os
import subprocess
import sys

import pytest

from em_core._threads import THREAD_ENVIRONMENT, configure_threads

_CHANGED_ENV = """
import json, os, sys
{preload}
before = dict(os.environ)
{imports}
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({{"changed": changed, "pyplot": "matplotlib.pyplot" in sys.modules}}))
"""


def _import_in_fresh_process(imports: str, preload: str = "") -> dict:
    """What importing ``imports`` changed, after ``preload`` (third-party side effects) ran."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENVIRONMENT}
    out = subprocess.run(
        [sys.executable, "-c", _CHANGED_ENV.format(imports=imports, preload=preload)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_em_core_leaves_the_environment_unchanged():
    seen = _import_in_fresh_process(
        "import em_core, em_core.backends, em_core.estep, em_core._fast_kernels, "
        "em_core._fast_incomplete, em_core.selection, em_core.merging"
    )
    assert seen["changed"] == []


def test_pipeline_libraries_leave_the_environment_and_matplotlib_alone():
    seen = _import_in_fresh_process(
        "import em_pipeline.lib.plots, em_pipeline.lib.mlflow_logging, em_pipeline.lib.segments\n"
        "import pathlib, tempfile, numpy as np\n"
        "from em_pipeline.lib.plots import plot_criterion_vs_k\n"
        "import pandas as pd\n"
        "table = pd.DataFrame({'n_components': [1, 2, 1, 2], 'covariance_type': "
        "['full', 'full', 'diag', 'diag'], 'bic': [10.0, 8.0, 12.0, 9.0], "
        "'chosen': [False, True, False, False]})\n"
        "png = pathlib.Path(tempfile.mkdtemp()) / 'bic.png'\n"
        "plot_criterion_vs_k(table, png)\n"
        "assert png.stat().st_size > 1000",
        preload="import mlflow  # sets its own telemetry session variable",
    )
    assert seen == {"changed": [], "pyplot": False}


def test_configure_threads_sets_only_what_the_process_did_not_choose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert configure_threads() == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert configure_threads() == {}
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("writeable_input", [True, False])
def test_parameters_are_read_only_and_leave_the_callers_arrays_alone(writeable_input):
    import numpy as np

    from em_core import GMMParams

    weights = np.array([0.25, 0.75])
    weights.flags.writeable = writeable_input
    params = GMMParams(weights, np.zeros((2, 3)), np.ones((2, 3)), "diag")
    with pytest.raises(ValueError, match="read-only"):
        params.means[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        params.weights[0] = 1.0
    assert weights.flags.writeable is writeable_input
