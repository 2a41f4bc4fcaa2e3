"""The plots carry what a statistician needs, read back from the figure objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from em_pipeline.lib import plots


def _table():
    rows = []
    for cov, offset in (("full", 0.0), ("diag", 300.0)):
        for k in range(1, 7):
            rows.append({"covariance_type": cov, "n_components": k,
                         "bic": 10_000 - 900 * min(k, 4) + 40 * max(k - 4, 0) + offset,
                         "chosen": cov == "full" and k == 4})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_bic_plot_has_a_panel_zoomed_on_the_minimum_with_the_choice_named():
    fig = plots.criterion_figure(_table(), "bic")
    full, zoom = fig.axes[:2]
    assert full.get_title() == "Model selection: BIC vs K"
    assert zoom.get_title().startswith("Near the minimum")
    low, high = zoom.get_ylim()
    assert low < 6400 < high and high - low < 0.2 * (full.get_ylim()[1] - full.get_ylim()[0])
    assert "K=4 full" in [t.get_text() for t in zoom.texts]


def test_restarts_are_told_apart_and_the_warm_start_and_kept_one_are_named():
    c = plots.CandidateCurves("K=4 full", [[-10, -5, -4], [-12, -6, -4], [-9, -4.5, -4]],
                              inits=["warm", "k-means++", "k-means++"], kept=0)  # fmt: skip
    fig = plots.restarts_figure(c, "Chosen model K=4 full: every restart")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["restart 0 (warm), kept", "restart 1 (k-means++)", "restart 2 (k-means++)"]
    styles = {line.get_linestyle() for line in fig.axes[0].lines if len(line.get_xdata()) > 1}
    assert len(styles) == 3  # identical restarts stay distinguishable


def test_the_best_candidates_are_labelled_and_the_rest_faded():
    rng = np.random.default_rng(0)
    cands = [plots.CandidateCurves(f"K={k}", [list(np.cumsum(rng.random(5)) - 100 * k)],
                                   score=float(1000 + k), kept=0) for k in range(1, 9)]  # fmt: skip
    fig = plots.candidates_figure(cands, "Kept restart of every candidate")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[0] == "3 other candidates"
    assert labels[1].startswith("#1 K=1 (score 1001.0)") and len(labels) == 1 + plots.TOP_CANDIDATES


def test_segment_profiles_show_shares_and_a_labelled_heat_map_of_medians():
    profiles = pd.DataFrame({"segment": [0, 1], "segment_label": ["low spend", "high spend"],
                             "share": [0.7, 0.3], "size": [70, 30],
                             "median_total_spend": [120.0, 3497.2],
                             "median_visits": [0.39, 8.8]})  # fmt: skip
    fig = plots.segment_profiles_figure(profiles, ["total_spend", "visits"])
    heat = fig.axes[1]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["0: low spend", "1: high spend"]
    assert [t.get_text() for t in heat.get_xticklabels()] == ["total spend", "visits"]
    assert {t.get_text() for t in heat.texts} == {"120", "3,497", "0.39", "8.8"}


def test_transitions_show_counts_row_shares_and_named_segments_in_readable_text():
    tr = pd.DataFrame({"from_segment": [0, 0, 1, 1], "to_segment": [0, 1, 0, 1],
                       "n_customers": [90, 10, 0, 50]})  # fmt: skip
    fig = plots.transitions_figure(tr, "Customers by segment", {0: "low spend", 1: "high spend"})
    ax = fig.axes[0]
    cells = {t.get_text(): t.get_color() for t in ax.texts}
    assert cells["90\n90%"] == "white" and cells["10\n10%"] == "black"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0: low spend (n=100)",
                                                            "1: high spend (n=50)"]  # fmt: skip


def test_the_asset_pages_show_the_plots_so_nobody_needs_to_open_mlflow(full_run):
    _, result = full_run
    shown = {}
    for node in ("segment_model", "segment_profiles"):
        (mat,) = result.asset_materializations_for_node(node)
        shown |= {k: v.value for k, v in mat.metadata.items() if k.startswith("plot")}
    for name in ("bic_vs_k", "loglik_chosen_restarts", "loglik_all_candidates", "segment_profiles"):
        assert shown[f"plot/{name}"].startswith(f"![{name}](data:image/png;base64,iVBOR")
        assert Path(shown[f"plot_path/{name}"]).is_file()


def test_the_merge_path_names_the_choice_on_integer_segment_counts():
    table = pd.DataFrame({"n_segments": [1, 2, 3, 4, 5], "entropy": [0, 31, 53, 112, 150],
                          "value": [0.006, 0.014, 0.042, 0.05, None]})  # fmt: skip
    fig = plots.merge_path_figure(table, 4)
    ax = fig.axes[0]
    assert "chosen: 4 segments" in [t.get_text() for t in ax.get_legend().get_texts()]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 5]
    assert all(float(t).is_integer() for t in ticks)
