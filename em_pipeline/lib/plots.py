"""Matplotlib figures (Agg backend, no display) logged to MLflow as artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_criterion_vs_k(table: pd.DataFrame, path: Path, criterion: str = "bic") -> Path:
    """BIC (or the chosen criterion) against K, one line per covariance type; lower is better."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cov, part in table.groupby("covariance_type"):
        part = part.sort_values("n_components")
        ax.plot(part["n_components"], part[criterion], marker="o", label=str(cov))
    chosen = table[table["chosen"]]
    if len(chosen):
        ax.scatter(
            chosen["n_components"],
            chosen[criterion],
            s=160,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
            label="chosen",
            zorder=5,
        )
    ax.set_xlabel("number of segments K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_title(f"Model selection: {criterion.upper()} vs K")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_loglik_curves(
    curves: dict[str, Sequence[Sequence[float]]], path: Path, title: str
) -> Path:
    """Log-likelihood per EM iteration; ``curves`` maps a name to the curves of its restarts."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, restarts in curves.items():
        for i, curve in enumerate(restarts):
            ax.plot(range(len(curve)), curve, lw=1.2, label=f"{name} restart {i}")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("observed-data log-likelihood")
    ax.set_title(title)
    if sum(len(r) for r in curves.values()) <= 12:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_segment_profiles(profiles: pd.DataFrame, features: Sequence[str], path: Path) -> Path:
    """Segment sizes and each segment's median feature values relative to the overall median."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = [
        f"{s}: {lab}" for s, lab in zip(profiles["segment"], profiles["segment_label"], strict=True)
    ]
    axes[0].barh(labels, profiles["share"])
    axes[0].set_xlabel("share of customers")
    axes[0].invert_yaxis()
    rel = pd.DataFrame(index=profiles["segment"])
    for f in features:
        col = profiles[f"median_{f}"].astype(float).to_numpy()
        overall = (profiles[f"median_{f}"] * profiles["size"]).sum() / max(
            profiles["size"].sum(), 1
        )
        rel[f] = col / overall if overall else col
    rel.plot.bar(ax=axes[1])
    axes[1].axhline(1.0, color="grey", lw=1)
    axes[1].set_ylabel("segment median / size-weighted mean of medians")
    axes[1].set_xlabel("segment")
    axes[1].set_title("Segment profiles (original units, relative)")
    return _save(fig, path)


def plot_transitions(transitions: pd.DataFrame, path: Path, title: str) -> Path:
    """Heatmap of the hard transition counts champion segment -> tonight's segment."""
    m = transitions.pivot(index="from_segment", columns="to_segment", values="n_customers")
    fig, ax = plt.subplots(figsize=(1.2 * m.shape[1] + 3, 1.0 * m.shape[0] + 2))
    ax.imshow(m.to_numpy(), cmap="Blues")
    ax.set_xticks(range(m.shape[1]), [str(c) for c in m.columns])
    ax.set_yticks(range(m.shape[0]), [str(r) for r in m.index])
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(int(m.iat[i, j])), ha="center", va="center", fontsize=9)
    ax.set_xlabel("tonight's segment")
    ax.set_ylabel("champion's segment")
    ax.set_title(title)
    return _save(fig, path)


def plot_merge_path(path_table: pd.DataFrame, chosen: int, path: Path) -> Path:
    """The merge path: posterior entropy and the merged pair's DEMP against the number of
    segments, the chosen number marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    part = path_table.sort_values("n_segments")
    ax.plot(part["n_segments"], part["entropy"], marker="o", color="C0")
    ax.set_xlabel("number of segments")
    ax.set_ylabel("posterior entropy EN (lower = crisper)", color="C0")
    merged = part.dropna(subset=["value"])
    twin = ax.twinx()
    twin.plot(merged["n_segments"], merged["value"], marker="s", color="C1")
    twin.set_ylabel("value of the merge that leaves this many segments", color="C1")
    ax.axvline(chosen, color="grey", linestyle="--")
    ax.set_title(f"Components merged into segments: {chosen} chosen")
    return _save(fig, path)
