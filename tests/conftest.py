"""Session-wide settings, read before any em_pipeline module is imported."""

import os

# the tests' run dates are in 2024; the default first partition is 90 days back
os.environ.setdefault("EM_SEGMENTS_START_DATE", "2024-01-01")


def pytest_collection_modifyitems(config, items):
    """Files marked ``slow`` run first (stable order otherwise): with one file per pytest-xdist
    worker (``--dist loadfile --no-loadscope-reorder``), the long end-to-end files start while
    the short ones fill the other worker, instead of one long file running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
