"""Matplotlib figures logged to MLflow as PNG artifacts.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot: nothing is
registered in a global figure manager and no backend is switched for the importing process.

Each ``*_figure`` function builds and returns the figure (tests read titles and labels back from
it); each ``plot_*`` saves that figure to a PNG and closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: Candidates drawn in colour and labelled in the all-candidates plot; the rest are faded.
TOP_CANDIDATES = 5
#: Smallest BIC window of the zoomed panel: 10 units is "very strong" evidence (Kass & Raftery).
MIN_ZOOM_WINDOW = 10.0


def _subplots(*grid: int, figsize: tuple[float, float], **kwargs):
    """A figure and its axes (as ``pyplot.subplots``), owned by the caller alone."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _readable(value: float) -> str:
    """A median as a person writes it: 3,480 / 616 / 8.8 / 0.39."""
    if not np.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def _text_colour(value: float, vmin: float, vmax: float, cmap) -> str:
    """Black or white, whichever reads better on the cell's colour."""
    share = 0.5 if vmax == vmin else (value - vmin) / (vmax - vmin)
    r, g, b, _ = cmap(share)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


# ------------------------------------------------------------------------- model selection


def criterion_figure(table: pd.DataFrame, criterion: str = "bic") -> Figure:
    """Criterion against K per covariance type (left) and zoomed near the minimum (right), the
    chosen model marked; lower is better."""
    name = criterion.upper()
    fig, (full, zoom) = _subplots(1, 2, figsize=(12, 4.5))
    finite = table[np.isfinite(table[criterion].astype(float))]
    best = float(finite[criterion].min()) if len(finite) else 0.0
    ranked = np.sort(finite[criterion].astype(float).unique())
    window = max(
        MIN_ZOOM_WINDOW, 1.5 * (ranked[min(4, len(ranked) - 1)] - best) if len(ranked) else 0
    )
    for ax in (full, zoom):
        for cov, part in finite.groupby("covariance_type"):
            part = part.sort_values("n_components")
            ax.plot(part["n_components"], part[criterion], marker="o", label=str(cov))
        chosen = table[table["chosen"]]
        for r in chosen.itertuples():
            value = getattr(r, criterion)
            ax.scatter([r.n_components], [value], s=180, facecolors="none", edgecolors="red",
                       linewidths=2, zorder=5, label="chosen")  # fmt: skip
            ax.annotate(f"K={r.n_components} {r.covariance_type}", (r.n_components, value),
                        textcoords="offset points", xytext=(8, -14), color="red")  # fmt: skip
        ax.set_xlabel("number of components K")
        ax.grid(alpha=0.3)
    full.set_ylabel(f"{name} (lower is better)")
    full.set_title(f"Model selection: {name} vs K")
    full.legend(fontsize=8)
    zoom.set_ylim(best - 0.1 * window, best + window)
    zoom.set_ylabel(f"{name} (lower is better)")
    zoom.set_title(f"Near the minimum ({name} within {window:.0f} of the best)")
    return fig


def plot_criterion_vs_k(table: pd.DataFrame, path: Path, criterion: str = "bic") -> Path:
    return _save(criterion_figure(table, criterion), path)


@dataclass(frozen=True)
class CandidateCurves:
    """The EM log-likelihood curves of one candidate's restarts."""

    name: str
    restarts: Sequence[Sequence[float]]
    inits: Sequence[str] = ()
    score: float = float("nan")  # the selection criterion: ranks candidates, lower is better
    kept: int | None = None  # index of the kept restart


def restarts_figure(candidate: CandidateCurves, title: str) -> Figure:
    """Every restart of one candidate: distinct line styles and end markers (identical restarts
    stay visible), the start named, the warm start dashed black, the kept one thick."""
    fig, ax = _subplots(figsize=(7, 4.5))
    styles = ["-", "-.", ":", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1))]  # "--" marks the warm start
    for i, curve in enumerate(candidate.restarts):
        init = candidate.inits[i] if i < len(candidate.inits) else ""
        warm = init == "warm"
        label = f"restart {i}" + (f" ({init})" if init else "")
        if i == candidate.kept:
            label += ", kept"
        ax.plot(range(len(curve)), curve, ls="--" if warm else styles[i % len(styles)],
                color="black" if warm else f"C{i % 10}", lw=2.4 if i == candidate.kept else 1.2,
                label=label)  # fmt: skip
        if len(curve):
            ax.plot(len(curve) - 1, curve[-1], marker="os^vD"[i % 5], ms=7, mfc="none",
                    color="black" if warm else f"C{i % 10}")  # fmt: skip
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("observed-data log-likelihood")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def candidates_figure(candidates: Sequence[CandidateCurves], title: str) -> Figure:
    """The kept restart of every candidate: the best few by the criterion in colour and labelled,
    the others faded grey."""
    fig, ax = _subplots(figsize=(8, 5))
    ranked = sorted(candidates, key=lambda c: (np.isnan(c.score), c.score))
    top, rest = ranked[:TOP_CANDIDATES], ranked[TOP_CANDIDATES:]
    for c in rest:
        curve = c.restarts[c.kept or 0]
        ax.plot(range(len(curve)), curve, color="grey", alpha=0.35, lw=0.8)
    if rest:
        ax.plot([], [], color="grey", alpha=0.35, label=f"{len(rest)} other candidates")
    for i, c in enumerate(top):
        curve = c.restarts[c.kept or 0]
        ax.plot(range(len(curve)), curve, color=f"C{i}", lw=2,
                label=f"#{i + 1} {c.name} (score {c.score:.1f})")  # fmt: skip
    tails = [v for c in top for v in c.restarts[c.kept or 0][1:]]
    if tails:  # the best candidates' range; worse ones may leave it at the bottom
        low, high = min(tails), max(tails)
        pad = 0.05 * (high - low) or 1.0
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("observed-data log-likelihood (range of the best)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_restarts(candidate: CandidateCurves, path: Path, title: str) -> Path:
    return _save(restarts_figure(candidate, title), path)


def plot_candidates(candidates: Sequence[CandidateCurves], path: Path, title: str) -> Path:
    return _save(candidates_figure(candidates, title), path)


# -------------------------------------------------------------------------------- segments


def segment_profiles_figure(profiles: pd.DataFrame, features: Sequence[str]) -> Figure:
    """Shares (left) and a heat map of each segment's median per feature (right), coloured by how
    far it lies from the other segments' (standardised across segments, size-weighted), with the
    median itself written in each cell."""
    labels = [f"{s}: {lab}" for s, lab in zip(profiles["segment"], profiles["segment_label"],
                                                strict=True)]  # fmt: skip
    fig, (bars, heat) = _subplots(
        1, 2, figsize=(13, 0.55 * len(profiles) + 2.5), gridspec_kw={"width_ratios": [1, 2]}
    )
    bars.barh(labels, profiles["share"])
    for i, share in enumerate(profiles["share"]):
        bars.text(share, i, f" {share:.1%}", va="center", fontsize=8)
    bars.set_xlabel("share of customers")
    bars.invert_yaxis()
    bars.set_title("Segment sizes")
    medians = profiles[[f"median_{f}" for f in features]].astype(float).to_numpy()
    w = profiles["size"].astype(float).to_numpy()
    w = w / w.sum() if w.sum() else np.full(len(w), 1 / max(len(w), 1))
    centre = w @ medians
    spread = np.sqrt(w @ (medians - centre) ** 2)
    z = np.divide(medians - centre, spread, out=np.zeros_like(medians), where=spread > 0)
    cmap = matplotlib.colormaps["RdBu_r"]
    lim = max(1.0, float(np.abs(z).max()))
    image = heat.imshow(z, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    fig.colorbar(image, ax=heat, label="standardised across segments")
    heat.set_xticks(
        range(len(features)), [f.replace("_", " ") for f in features], rotation=20, ha="right"
    )
    heat.set_yticks(range(len(labels)), labels)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            heat.text(j, i, _readable(medians[i, j]), ha="center", va="center", fontsize=9,
                      color=_text_colour(z[i, j], -lim, lim, cmap))  # fmt: skip
    heat.set_title("Median per feature (original units)")
    return fig


def plot_segment_profiles(profiles: pd.DataFrame, features: Sequence[str], path: Path) -> Path:
    return _save(segment_profiles_figure(profiles, features), path)


def transitions_figure(
    transitions: pd.DataFrame, title: str, labels: Mapping[int, str] | None = None
) -> Figure:
    """Customers by segment, before -> after: counts and the share of the row's segment in each
    cell (text colour chosen for contrast), ids labelled with their names and sizes."""
    counts = transitions.pivot(index="from_segment", columns="to_segment", values="n_customers")
    counts = counts.fillna(0)
    share = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    labels = labels or {}

    def tick(sid, n: float) -> str:
        name = labels.get(int(sid), "")
        return f"{sid}{': ' + name if name else ''} (n={int(n)})"

    fig, ax = _subplots(figsize=(1.3 * counts.shape[1] + 5, 0.8 * counts.shape[0] + 2))
    cmap = matplotlib.colormaps["Blues"]
    ax.imshow(share.to_numpy(), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(
        range(counts.shape[1]), [f"{c} (n={int(counts[c].sum())})" for c in counts.columns]
    )  # names are on the rows; the same ids here
    ax.set_yticks(range(counts.shape[0]),
                  [tick(r, counts.loc[r].sum()) for r in counts.index])  # fmt: skip
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{int(counts.iat[i, j])}\n{share.iat[i, j]:.0%}", ha="center",
                    va="center", fontsize=9,
                    color=_text_colour(share.iat[i, j], 0, 1, cmap))  # fmt: skip
    ax.set_xlabel("tonight's segment id")
    ax.set_ylabel("published segment before")
    ax.set_title(f"{title}\n(cells: customers and share of the row)")
    return fig


def plot_transitions(
    transitions: pd.DataFrame, path: Path, title: str, labels: Mapping[int, str] | None = None
) -> Path:
    return _save(transitions_figure(transitions, title, labels), path)


def merge_path_figure(path_table: pd.DataFrame, chosen: int) -> Figure:
    """The merge path: posterior entropy and the value of each merge against the number of
    segments (integers), the chosen number marked and named."""
    fig, ax = _subplots(figsize=(7, 4.5))
    part = path_table.sort_values("n_segments")
    ax.plot(part["n_segments"], part["entropy"], marker="o", color="C0", label="entropy EN")
    ax.set_xlabel("number of segments")
    ax.set_ylabel("posterior entropy EN (lower = crisper)", color="C0")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    merged = part.dropna(subset=["value"])
    twin = ax.twinx()
    twin.plot(merged["n_segments"], merged["value"], marker="s", color="C1",
              label="value of the merge leaving this many")  # fmt: skip
    twin.set_ylabel("value of the merge that leaves this many segments", color="C1")
    ax.axvline(chosen, color="grey", linestyle="--", label=f"chosen: {chosen} segments")
    lines = ax.get_legend_handles_labels()
    twins = twin.get_legend_handles_labels()
    ax.legend(lines[0] + twins[0], lines[1] + twins[1], fontsize=8, loc="upper left")
    ax.set_title(f"Components merged into segments: {chosen} chosen")
    return fig


def plot_merge_path(path_table: pd.DataFrame, chosen: int, path: Path) -> Path:
    return _save(merge_path_figure(path_table, chosen), path)
