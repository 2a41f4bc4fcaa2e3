"""Segments vs the truth, by size of the customer base: the method before and after each change.

For each generator and size, the nightly sweep's defaults (K = 1..8, four covariance types, 3
restarts, mclust's prior, min_class_size=1, SQUAREM) fitted by the pipeline's own functions, then:

- ``components``: every component a segment, on the old default transforms (log1p of spend,
  visits and cart, recency as is): what the pipeline published before segments were merged;
- ``fixed, K ≤ 8``: log of the visit rate, log1p of recency, values dequantised within their
  rounding unit (``em_core.dequantize``) for the fit, DEMP merge (``em_core.merging``): the
  defaults before ``k_limit``;
- ``fixed, K to 16``: the same, with the chosen type tried up to K = 16 while BIC chooses the top
  (``select_model(k_limit=16)``; the K ≤ 8 choice is read off the same sweep, whose candidates
  have the same seeds) and groups below 2 % merged first (``min_share=0.02``);
- ``new``: today's defaults: every feature's power transform with λ estimated within a mixture
  (``em_core.power_within``), then as ``fixed, K to 16``.

ARI against the generator's truth; "best grouping" maps each of the new fit's components to its
majority true segment (an upper bound for any merge); "supervised" is a 5-fold cross-validated
``HistGradientBoostingClassifier`` on the raw columns (scikit-learn, bench only), what the columns
can tell at all. ``orders`` and ``lognormal`` are the pipeline's sample generators;
``order_data`` is ``tests/core/order_data.py`` (other columns, one-time × loyal truth).

    python bench/segments.py --sizes 2000,20000,200000 --generators orders,lognormal
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from em_core import adjusted_rand_index, select_model
from em_core.merging import merge_components
from em_pipeline.lib.dequantised import dequantised_features, fit_lattices
from em_pipeline.lib.schema import CustomerSchema, Feature
from em_pipeline.lib.transforms import FeatureTransform

SWEEP = dict(
    n_components=range(1, 9), covariance_types=["full", "diag", "spherical", "tied"], n_init=3,
    random_state=0, prior="default", min_class_size=1, acceleration="squarem", n_jobs=2,
)  # fmt: skip
K_LIMIT, MIN_SHARE = 16, 0.02
# per column: (old default transform, the fixed transforms before λ within a mixture)
TRANSFORMS = {
    "total_spend": ("log1p", "log1p"), "visits_per_month": ("log1p", "log"),
    "avg_cart_size": ("log1p", "log1p"), "days_since_last_order": ("none", "log1p"),
    "orders": ("log1p", "log1p"), "items_per_order": ("log1p", "log1p"),
    "visit_rate": ("log1p", "log"), "recency_days": ("none", "log1p"),
    "spend_per_order": ("log1p", "log1p"),
}  # fmt: skip


def generate(generator: str, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    if generator == "order_data":
        from tests.core.order_data import order_segments_raw

        raw, truth = order_segments_raw(n, seed)
        return pd.DataFrame(raw).assign(customer_id=np.arange(n).astype(str)), truth
    from em_pipeline.lib.sample_data import generate_customers

    return generate_customers(n, seed=seed, generator=generator)


def schema_for(df: pd.DataFrame, variant: str) -> CustomerSchema:
    """``before``: the old default transforms; ``fixed``: the fixed transforms the pipeline used
    before λ within a mixture; ``mixture``: today's default (every feature "mixture")."""
    names = [c for c in df.columns if c != "customer_id"]
    how = {name: ("mixture",) * 2 if variant == "mixture" else TRANSFORMS[name] for name in names}
    column = 1 if variant == "fixed" else 0
    features = tuple(Feature(c, how[c][column], c != "total_spend") for c in names)
    return CustomerSchema(features=features, label_feature=names[0])


def fit(X_fit: np.ndarray, X: np.ndarray) -> tuple[object, np.ndarray, np.ndarray, float]:
    t = time.perf_counter()
    best = select_model(X_fit, **SWEEP).best
    return best, best.predict_proba(X_fit), best.predict_proba(X), time.perf_counter() - t


def within_eight(result) -> object:
    """The K ≤ 8 sweep's choice, read off a sweep extended by ``k_limit``."""
    rows = [r for r in result.table if r["n_components"] <= 8 and r["eligible"]]
    row = min(rows, key=lambda r: r["bic"])
    return result.models[(row["n_components"], row["covariance_type"])]


def segments(model, X_fit: np.ndarray, X: np.ndarray, truth: np.ndarray, min_share: float):
    """(segments, ARI, merge seconds, best-grouping ARI) of a model's merged components."""
    resp_fit, resp = model.predict_proba(X_fit), model.predict_proba(X)
    t = time.perf_counter()
    merged = merge_components(resp_fit, min_share=min_share)
    t_merge = time.perf_counter() - t
    ari = adjusted_rand_index(truth, merged.posteriors(resp).argmax(axis=1))
    comp = resp.argmax(axis=1)
    majority = np.array([
        np.bincount(truth[comp == c], minlength=truth.max() + 1).argmax()
        if (comp == c).any() else 0
        for c in range(model.n_components)
    ])  # fmt: skip
    return merged.n_segments, ari, t_merge, adjusted_rand_index(truth, majority[comp])


def extended_sweep(df: pd.DataFrame, schema: CustomerSchema):
    """Transform, dequantise and run the K ≤ 8 sweep extended to ``K_LIMIT``: (result, X_fit, X,
    seconds of transform + dequantisation, wall seconds of the sweep)."""
    t = time.perf_counter()
    transform = FeatureTransform.fit(df, schema)
    X = transform.transform(df)
    X_fit = dequantised_features(df, schema, transform, fit_lattices(df, schema), seed=0)
    t_prep = time.perf_counter() - t
    t = time.perf_counter()
    result = select_model(X_fit, **SWEEP, k_limit=K_LIMIT)
    return result, X_fit, X, t_prep, time.perf_counter() - t


def row(generator: str, n: int, seed: int, hgb: float | None, new_only: bool = False) -> str:
    df, truth = generate(generator, n, seed)
    new, X_fit, X, t_prep, t_new = extended_sweep(df, schema_for(df, "mixture"))
    s_new, ari_new, t_merge, best_new = segments(new.best, X_fit, X, truth, MIN_SHARE)
    if new_only:
        m = new.best
        return (
            f"| {generator} | {n:,} | {len(set(truth))} | | | | K={m.n_components} "
            f"{m.covariance_type}: **{s_new} / {ari_new:.3f}** ({best_new:.3f}) | | "
            f"{t_prep:.2f} s | {t_merge:.2f} s | – / – / {t_new:.0f} s |"
        )
    X_old = FeatureTransform.fit(df, schema_for(df, "before")).transform(df)
    model, resp, _, t_old = fit(X_old, X_old)
    before = adjusted_rand_index(truth, resp.argmax(axis=1))

    fixed, X_fit, X, _, t_fixed = extended_sweep(df, schema_for(df, "fixed"))
    eight = within_eight(fixed)
    s8, ari8, _, best8 = segments(eight, X_fit, X, truth, 0.0)
    s16, ari16, _, best16 = segments(fixed.best, X_fit, X, truth, MIN_SHARE)

    def fitted(m, s, ari, best, bold=False):
        text = f"{s} / {ari:.3f}"
        return f"K={m.n_components} {m.covariance_type}: " + (
            f"**{text}** ({best:.3f})" if bold else f"{text} ({best:.3f})"
        )

    cells = [
        generator, f"{n:,}", f"{len(set(truth))}",
        f"K={model.n_components} {model.covariance_type}: {model.n_components} / {before:.3f}",
        fitted(eight, s8, ari8, best8), fitted(fixed.best, s16, ari16, best16),
        fitted(new.best, s_new, ari_new, best_new, bold=True),
        "" if hgb is None else f"{hgb:.3f}",
        f"{t_prep:.2f} s", f"{t_merge:.2f} s", f"{t_old:.0f} / {t_fixed:.0f} / {t_new:.0f} s",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def supervised(df: pd.DataFrame, truth: np.ndarray) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    X = df.drop(columns=["customer_id"]).to_numpy(dtype=float)
    pred = cross_val_predict(HistGradientBoostingClassifier(random_state=0), X, truth, cv=5)
    return adjusted_rand_index(truth, pred)


def main() -> None:  # a spawn pool (n_jobs=2) needs the __main__ guard below
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="2000,20000")
    p.add_argument("--generators", default="orders,lognormal,order_data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-supervised", action="store_true")
    p.add_argument("--new-only", action="store_true", help="only today's method (large n)")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    print(
        "| data | n | true segments | components (before): K / ARI | fixed transforms, K ≤ 8: "
        "segments / ARI (best grouping) | fixed, K to 16 | **new**: λ within a mixture, K to 16 "
        "| supervised | transform + dequantise (new) | merge (new) | sweeps, wall "
        "(before / fixed / new) |"
    )
    print("|---|---:|---:|---|---|---|---|---:|---:|---:|---:|")
    for generator in args.generators.split(","):
        for n in (int(v) for v in args.sizes.split(",")):
            hgb = None
            if not (args.no_supervised or args.new_only) and n <= 200_000:
                hgb = supervised(*generate(generator, n, args.seed))
            print(row(generator, n, args.seed, hgb, args.new_only), flush=True)


if __name__ == "__main__":
    main()
