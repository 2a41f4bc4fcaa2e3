"""What the CLI prints while a night runs: one line per asset as it finishes, the model sweep's
progress, warnings and repairs; Dagster's own event log only with ``--verbose``.

It is a Dagster logger (:func:`progress_logger`) attached to the job for the CLI run, reading the
structured event behind each log record: no parsing of Dagster's console output, no ANSI codes.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

import dagster as dg

SWEEP_LINE = re.compile(r"^\[(\d+)/(\d+)\] (.*?):")


class ProgressHandler(logging.Handler):
    """Turns Dagster's log records into the CLI's few progress lines."""

    def __init__(self, asset_steps: set[str], stream: TextIO | None = None):
        super().__init__(level=logging.DEBUG)
        self.asset_steps = asset_steps
        self.stream = stream or sys.stdout
        self.sweep_start: float | None = None
        self.last_share = -1.0

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is not None:
            self._event(event)
            return
        message = str(meta.get("orig_message") or record.getMessage())
        if record.levelno >= logging.WARNING:
            self._print(f"  warning ({meta.get('step_key') or 'run'}): {message}")
        elif message.startswith("repaired:"):
            self._print(f"  {message}")
        elif (found := SWEEP_LINE.match(message)) is not None:
            self._sweep(int(found.group(1)), int(found.group(2)), found.group(3))

    def _event(self, event: dg.DagsterEvent) -> None:
        step = event.step_key
        if step not in self.asset_steps:
            return  # checks report through their own lines when they fail
        if event.event_type_value == "STEP_SUCCESS":
            seconds = event.event_specific_data.duration_ms / 1000
            self._print(f"  {step:<22} done in {seconds:6.1f} s")
        elif event.event_type_value == "STEP_FAILURE":
            self._print(f"  {step:<22} FAILED")

    def _sweep(self, i: int, n: int, candidate: str) -> None:
        """One line per quarter of the candidates: i of n, the latest one, time left."""
        now = time.monotonic()
        if i == 1 or self.sweep_start is None:
            self.sweep_start, self.last_share = now, -1.0
        share = i / n
        if share < 1 and share - self.last_share < 0.25:
            return
        self.last_share = share
        elapsed = now - self.sweep_start
        left = elapsed / i * (n - i)
        self._print(f"  segment_model: candidate {i}/{n} ({candidate}), about {left:.0f} s left")

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def progress_logger(asset_steps: set[str]) -> dg.LoggerDefinition:
    """The CLI's Dagster logger, printing through a :class:`ProgressHandler`."""

    @dg.logger(description="em-segments CLI progress lines")
    def _progress(_: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("em_segments.progress", level=logging.DEBUG)
        logger.addHandler(ProgressHandler(asset_steps))
        return logger

    return _progress
