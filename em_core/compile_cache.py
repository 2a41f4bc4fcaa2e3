"""Is numba's on-disk cache of em_core's compiled kernels present for this source?

Kernels are compiled on first use and cached next to their module (``__pycache__``, or under
``NUMBA_CACHE_DIR``); a cache older than its source is recompiled. Callers use this to say
"compiling kernels (first run only)" instead of stalling silently for a minute.
"""

from __future__ import annotations

import os
from pathlib import Path

KERNEL_MODULES = ("_fast_kernels", "_fast_incomplete", "_hierarchical_kernels", "_kmeans_kernels")


def kernel_cache_is_warm() -> bool:
    """True when every kernel module has cache index files newer than its source (or numba is
    not used, so nothing is compiled)."""
    from em_core._fast_kernels import HAVE_NUMBA

    if not HAVE_NUMBA:
        return True
    package = Path(__file__).parent
    custom = os.environ.get("NUMBA_CACHE_DIR")  # numba then caches there only
    roots = [Path(custom)] if custom else [package / "__pycache__"]
    for module in KERNEL_MODULES:
        source = (package / f"{module}.py").stat().st_mtime
        indexes = [p for root in roots if root.is_dir() for p in root.rglob(f"{module}.*.nbi")]
        if not any(p.stat().st_mtime >= source for p in indexes):
            return False
    return True
