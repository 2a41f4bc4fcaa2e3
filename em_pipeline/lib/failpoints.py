"""Named crash points for fault-injection tests of publishing (as in FoundationDB or TiKV).

``failpoint("publish:switched")`` acts only when the environment variable
``EM_SEGMENTS_FAILPOINT`` names that point, and does nothing otherwise; only tests set it. By
default it kills the process with SIGKILL (no cleanup, no ``finally``: like a power cut or the
OOM killer). With ``EM_SEGMENTS_FAILPOINT_WAIT_FOR=<file>`` it pauses there instead until that
file exists (at most ``PAUSE_LIMIT_SECONDS``), so a test can act while a run is mid-way.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAILPOINT_ENV = "EM_SEGMENTS_FAILPOINT"
WAIT_FOR_ENV = "EM_SEGMENTS_FAILPOINT_WAIT_FOR"
PAUSE_LIMIT_SECONDS = 300.0


def failpoint(name: str) -> None:
    """Die (or pause) here if the crash tests asked for ``name``."""
    if os.environ.get(FAILPOINT_ENV) != name:
        return
    release = os.environ.get(WAIT_FOR_ENV)
    if not release:
        os.kill(os.getpid(), signal.SIGKILL)
        return
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
