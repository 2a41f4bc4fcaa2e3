"""The CLI's exit code says the class of a failure; the closing block says what and where, and
the stack trace goes to a log file whose path is printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from em_pipeline.__main__ import main
from em_pipeline.failure_report import EXIT_BAD_DROP, EXIT_INTERNAL


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("EM_SEGMENTS_HOME", str(tmp_path / "home"))
    return [
        "--home",
        str(tmp_path / "home"),
        "--run-date",
        "2024-05-01",
        "--k-max",
        "3",
        "--k-limit",
        "3",
    ]


def _log_file(err: str) -> Path:
    found = re.search(r"error reports with stack traces: (\S+\.log)", err)
    assert found, err
    return Path(found.group(1))


def test_a_rejected_drop_exits_4_naming_the_folder_and_logs_the_trace(tmp_path, cli_env, capsys):
    empty = tmp_path / "drop"
    empty.mkdir()
    assert main([*cli_env, "--drop-dir", str(empty)]) == EXIT_BAD_DROP
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("  step raw_customers:"))
    assert "rejected" in line and str(empty) in line
    log = _log_file(err).read_text()
    assert "== step raw_customers" in log and 'File "' in log  # the stack trace


def test_an_internal_error_exits_1_with_the_cause(cli_env, capsys, monkeypatch):
    from em_pipeline.lib.mlflow_logging import SegmentTracker

    def broken(*args, **kwargs):
        raise RuntimeError("model registry unavailable")

    monkeypatch.setattr(SegmentTracker, "log_pyfunc_model", broken)
    assert main([*cli_env, "--n-init", "1"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "step segment_model: RuntimeError: model registry unavailable" in err
    assert "model registry unavailable" in _log_file(err).read_text()
