"""Whether numba's cache of em_core's kernels is present for the current source."""

import os
import time

import pytest

from em_core._fast_kernels import HAVE_NUMBA
from em_core.compile_cache import KERNEL_MODULES, kernel_cache_is_warm


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed: nothing is ever compiled")
def test_an_empty_or_stale_cache_is_cold_and_a_fresh_one_warm(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not kernel_cache_is_warm()  # empty cache directory
    folder = tmp_path / "em_core"
    folder.mkdir()
    indexes = [folder / f"{m}.some_kernel-10.py311.nbi" for m in KERNEL_MODULES]
    for p in indexes:
        p.write_bytes(b"")
        os.utime(p, (0, 0))  # older than the source: numba would recompile
    assert not kernel_cache_is_warm()
    now = time.time()
    for p in indexes[:-1]:
        os.utime(p, (now, now))
    assert not kernel_cache_is_warm()  # one module still without a fresh cache
    os.utime(indexes[-1], (now, now))
    assert kernel_cache_is_warm()
