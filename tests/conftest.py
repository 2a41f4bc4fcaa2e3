"""Session-wide settings, read before any em_pipeline module is imported."""

import os

# the tests' run dates are in 2024; the default first partition is 90 days back
os.environ.setdefault("EM_SEGMENTS_START_DATE", "2024-01-01")
