"""Nightly Dagster pipeline for customer segmentation with em_core.

Dagster definitions live in :mod:`em_pipeline.definitions` (autoloading ``defs/``); helpers that do
not need Dagster live in :mod:`em_pipeline.lib`. Run one partition from the command line with
``python -m em_pipeline``.
"""

__all__: list[str] = []
