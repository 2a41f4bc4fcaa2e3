"""One run per home: an exclusive ``flock`` on ``<home>/.run.lock`` for as long as a run works.

Two runs sharing a home would mix their partition files and publish each other's rows. The lock
is an advisory ``flock(2)``: the kernel drops it when the holding process dies, however it dies, so
a crashed run never leaves a stale lock. Beside it, ``.run.lock.json`` says who holds it (pid,
host, run date, Dagster run id, command, start time) for the message a second run prints.

The lock is re-entrant within a process (the CLI takes it before Dagster starts, and the
resources of the in-process run take it again). With the multiprocess executor every step process
takes it, and steps of the run that holds it wait their turn; that steps of two such runs never
interleave is the job of the run queue's tag concurrency limit (``em_segments/home``, one run per
home; see README).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_FILE = ".run.lock"
HOLDER_FILE = ".run.lock.json"

_held: dict[str, int] = {}  # lock path -> how many times this process holds it


class HomeBusy(RuntimeError):
    """Another run holds the home's lock."""

    def __init__(self, home: Path, holder: dict[str, Any] | None, wait_seconds: float):
        self.home = home
        self.holder = holder or {}
        who = describe_holder(self.holder)
        waited = f" (after waiting {wait_seconds:g} s)" if wait_seconds > 0 else ""
        super().__init__(
            f"the home {home} is in use by another run: {who}{waited}. Two runs on one home would "
            "mix their files; wait for it to finish (or give a wait time for the lock)"
        )


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "holder unknown (it has not written .run.lock.json yet)"
    parts = [f"pid {holder.get('pid')} on {holder.get('host')}"]
    if holder.get("run_date"):
        parts.append(f"run date {holder['run_date']}")
    if holder.get("dagster_run_id"):
        parts.append(f"Dagster run {holder['dagster_run_id']}")
    if holder.get("started_at"):
        parts.append(f"since {holder['started_at']}")
    if holder.get("command"):
        parts.append(f"command {holder['command']!r}")
    return ", ".join(parts)


def read_holder(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((home / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def hold_home(
    home: str | os.PathLike, *, wait_seconds: float = 0.0, **holder: Any
) -> Iterator[None]:
    """Hold the home's run lock for the ``with`` block; raise :class:`HomeBusy` if another
    process holds it longer than ``wait_seconds``. ``holder`` fields describe this run."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    key = str((home / LOCK_FILE).resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = _acquire(home, key, wait_seconds, holder.get("dagster_run_id"))
    _held[key] = 1
    try:
        _write_holder(home, holder)
        yield
    finally:
        del _held[key]
        (home / HOLDER_FILE).unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(home: Path, key: str, wait_seconds: float, run_id: str | None) -> int:
    """The flock; a step of the run that holds it (a sibling step process of the multiprocess
    executor) waits its turn, any other run waits at most ``wait_seconds``."""
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            holder = read_holder(home)
            sibling = run_id is not None and (holder or {}).get("dagster_run_id") == run_id
            waited = time.monotonic() - start
            if waited >= wait_seconds and not sibling:
                os.close(fd)
                raise HomeBusy(home, holder, wait_seconds) from None
            time.sleep(0.05 if sibling else min(0.5, wait_seconds - waited))


def _write_holder(home: Path, holder: dict[str, Any]) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **{k: v for k, v in holder.items() if v is not None},
    }
    tmp = home / f"{HOLDER_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, home / HOLDER_FILE)
