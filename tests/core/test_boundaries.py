"""em_core is the pure engine: importing it pulls in no orchestration or tracking library."""

import subprocess
import sys


def test_em_core_imports_no_pipeline_libraries():
    code = (
        "import sys, em_core\n"
        "names = ('dagster', 'mlflow', 'pandas', 'pyarrow', 'duckdb')\n"
        "bad = [m for m in names if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
