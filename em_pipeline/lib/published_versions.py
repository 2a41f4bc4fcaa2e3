"""Versioned publish folders with one pointer switched last: what BI reads is never half-published.

Layout under the published folder (``<home>/published``)::

    versions/<version>/warehouse.duckdb          # the whole warehouse of one publish
    versions/<version>/<table>.parquet           # every current table, exported from it
    versions/<version>/history/<table>/<run_date>.parquet
    versions/<version>/_publish.json             # manifest: run date, tables, kinds, row counts
    current -> versions/<version>                # THE pointer; replaced atomically (rename)
    <table>.parquet -> current/<table>.parquet   # stable paths for BI, resolved through current
    history -> current/history
    <home>/warehouse.duckdb -> published/current/warehouse.duckdb

A version folder is complete (files written, fsynced, manifest last) before it is renamed out of
staging, and never changes afterwards. Every path a reader opens goes through ``current``, whose
switch is one ``rename(2)``: a reader sees all of the previous version or all of the new one, in
DuckDB and in Parquet alike, and a reader that holds a file open keeps reading its version (unlinked
files live on until closed). :func:`recover` (run before each publish and at the start of a night)
removes what a crash left behind: staging folders, a complete version that was never switched in,
stale links, and versions older than the ``keep`` newest.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSIONS = "versions"
CURRENT = "current"
MANIFEST = "_publish.json"
DB_FILE = "warehouse.duckdb"
HISTORY = "history"
STAGING_PREFIX = ".staging-"
LEGACY_PREFIX = ".legacy-"


@dataclass(frozen=True)
class PublishedLayout:
    """Where the versions, the pointer and the stable links of one warehouse live."""

    parquet_dir: Path
    duckdb_path: Path

    @classmethod
    def of(cls, parquet_dir: str | Path, duckdb_path: str | Path) -> PublishedLayout:
        return cls(Path(parquet_dir).absolute(), Path(duckdb_path).absolute())

    @property
    def versions(self) -> Path:
        return self.parquet_dir / VERSIONS

    @property
    def pointer(self) -> Path:
        return self.parquet_dir / CURRENT

    def current_version(self) -> Path | None:
        """The version folder ``current`` points to, or None before the first publish."""
        if not self.pointer.is_symlink():
            return None
        target = self.versions / Path(os.readlink(self.pointer)).name
        return target if (target / MANIFEST).exists() else None

    def manifest(self, version: Path | None = None) -> dict[str, Any] | None:
        version = version or self.current_version()
        if version is None:
            return None
        return json.loads((version / MANIFEST).read_text())

    def legacy_database(self) -> Path | None:
        """A warehouse file from before versioned publishing (a regular file at duckdb_path)."""
        p = self.duckdb_path
        return p if p.is_file() and not p.is_symlink() else None


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk (a rename is durable only then)."""
    for dirpath, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(version: Path, manifest: dict[str, Any]) -> None:
    (version / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))


def _replace_with_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one rename (over a file, a link or nothing)."""
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def switch(layout: PublishedLayout, version: Path) -> None:
    """The commit point of a publish: ``current`` now names ``version``."""
    _replace_with_symlink(layout.pointer, f"{VERSIONS}/{version.name}")
    fsync_dir(layout.parquet_dir)


def ensure_links(layout: PublishedLayout) -> None:
    """The stable paths BI opens: the DuckDB file, one link per current table, ``history``."""
    manifest = layout.manifest()
    if manifest is None:
        return
    current = layout.pointer
    _replace_with_symlink(
        layout.duckdb_path, os.path.relpath(current / DB_FILE, layout.duckdb_path.parent)
    )
    wanted = {f"{t}.parquet" for t, meta in manifest["tables"].items() if meta["kind"] != "history"}
    for name in wanted:
        link = layout.parquet_dir / name
        if not (link.is_symlink() and os.readlink(link) == f"{CURRENT}/{name}"):
            _replace_with_symlink(link, f"{CURRENT}/{name}")
    for link in layout.parquet_dir.glob("*.parquet"):
        if link.is_symlink() and link.name not in wanted:
            link.unlink()  # a table this version no longer publishes
    history = layout.parquet_dir / HISTORY
    if history.is_dir() and not history.is_symlink():
        # a history folder from before versioned publishing: its rows live on in the warehouse
        history.rename(layout.versions / f"{LEGACY_PREFIX}{HISTORY}-{os.getpid()}")
    if not history.is_symlink():
        _replace_with_symlink(history, f"{CURRENT}/{HISTORY}")


def collect_garbage(layout: PublishedLayout, keep: int) -> list[Path]:
    """Remove staging folders, legacy leftovers, versions never switched in (newer than current)
    and all but the ``keep`` newest switched-in versions. Returns what was removed."""
    if not layout.versions.is_dir():
        return []
    current = layout.current_version()
    removed = []
    versions = sorted(p for p in layout.versions.iterdir() if not p.name.startswith("."))
    if current is not None:
        older = [v for v in versions if v.name < current.name]
        stale = older[: max(0, len(older) - (keep - 1))]
        stale += [v for v in versions if v.name > current.name]
    else:
        stale = versions
    leftovers = [
        p for p in layout.versions.iterdir() if p.name.startswith((STAGING_PREFIX, LEGACY_PREFIX))
    ]
    for path in [*leftovers, *stale]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def recover(layout: PublishedLayout, keep: int = 2) -> list[Path]:
    """Repair what a crashed publish left: stable links of the current version, leftovers."""
    ensure_links(layout)
    return collect_garbage(layout, keep)


def current_files(parquet_dir: str | Path) -> dict[str, Path]:
    """The Parquet files of the current version, by path relative to the version folder."""
    layout = PublishedLayout.of(parquet_dir, Path(parquet_dir) / DB_FILE)
    version = layout.current_version()
    if version is None:
        return {}
    return {str(p.relative_to(version)): p for p in sorted(version.rglob("*.parquet"))}
