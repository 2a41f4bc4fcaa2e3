"""The set-up's one-off kernel compile, function by function: the working tree against a git
revision, side by side in one run.

Each side runs ``em_pipeline.warmup`` (the set-up's sample night and score) in its own process
with an empty ``NUMBA_CACHE_DIR``, so every kernel is compiled, and records numba's
``numba:compile`` events: the seconds of each outermost compilation (callees included), by
function, and the warm-up's wall time. ``--against`` is checked out into a cached worktree under
the temp folder (``sweep_revisions.revision_tree``). The sides alternate ``--repeats`` times and
the faster warm-up of each is kept.

    .venv/bin/python bench/compile_profile.py --against HEAD~1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_revisions import revision_tree  # noqa: E402

# Runs inside the tree under test: argv = tree; prints JSON.
WORKER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from numba.core import event

compiles, stack = [], []

class Outermost(event.Listener):
    def on_start(self, ev):
        stack.append(time.perf_counter())

    def on_end(self, ev):
        started = stack.pop()
        if not stack:
            name = ev.data["dispatcher"].py_func.__qualname__
            compiles.append([name, time.perf_counter() - started])

event.register("numba:compile", Outermost())
from em_pipeline.warmup import warm_up

seconds = warm_up()
print(json.dumps({"seconds": seconds, "compiles": compiles}))
"""


def run_side(tree: Path, folder: Path) -> dict:
    script = folder / "compile_worker.py"
    script.write_text(WORKER)
    with tempfile.TemporaryDirectory(dir=folder) as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, str(script), str(tree)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def by_function(result: dict) -> dict[str, tuple[int, float]]:
    """{function: (compilations, seconds)} of one side."""
    table: dict[str, tuple[int, float]] = {}
    for name, seconds in result["compiles"]:
        count, total = table.get(name, (0, 0.0))
        table[name] = (count + 1, total + seconds)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    old_tree = revision_tree(args.against)
    with tempfile.TemporaryDirectory() as folder:
        then, today = [], []
        for _ in range(args.repeats):
            then.append(run_side(old_tree, Path(folder)))
            today.append(run_side(ROOT, Path(folder)))
    old = min(then, key=lambda r: r["seconds"])
    new = min(today, key=lambda r: r["seconds"])
    old_f, new_f = by_function(old), by_function(new)
    names = sorted(
        set(old_f) | set(new_f),
        key=lambda f: -max(old_f.get(f, (0, 0))[1], new_f.get(f, (0, 0))[1]),
    )
    print(f"set-up compile, {args.against} vs working tree (outermost numba compilations)")
    print(f"{'function':<28} {'then n':>6} {'then s':>8} {'today n':>7} {'today s':>8}")
    for name in names:
        (on, os_), (nn, ns) = old_f.get(name, (0, 0.0)), new_f.get(name, (0, 0.0))
        print(f"{name:<28} {on:>6} {os_:>8.1f} {nn:>7} {ns:>8.1f}")
    old_total = sum(s for _, s in old["compiles"])
    new_total = sum(s for _, s in new["compiles"])
    print(f"{'compile total':<28} {'':>6} {old_total:>8.1f} {'':>7} {new_total:>8.1f}")
    print(
        f"warm-up wall: {old['seconds']:.1f} s then, {new['seconds']:.1f} s today "
        f"({new['seconds'] / old['seconds']:.2f}x)"
    )


if __name__ == "__main__":
    main()
