"""Segments vs components: how many segments and how well they match the truth, by size.

For each generator and size: the BIC sweep (the pipeline's defaults: K = 1..8, four covariance
types, 3 restarts, mclust's prior, min_class_size=1) on log1p or power-transformed features, then
the components as segments (today's pipeline), DEMP and entropy merges (em_core.merging), the
best possible grouping of the components (each to its majority true segment: an upper bound for
any merge) and a supervised classifier on the same columns (5-fold cross-validated
HistGradientBoosting: what the columns can tell at all). ARI against the generator's truth.

    python bench/segments.py --sizes 2000,20000,200000 --generators sample,orders
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from em_core import adjusted_rand_index, select_model
from em_core.merging import merge_components


def sample_generator(n: int, seed: int):
    import pandas as pd  # noqa: F401

    from em_pipeline.lib.sample_data import generate_customers

    df, truth = generate_customers(n, seed=seed)
    return df, truth


def orders_generator(n: int, seed: int):
    import pandas as pd

    from tests.core.order_data import order_segments_raw

    raw, truth = order_segments_raw(n, seed)
    return pd.DataFrame(raw), truth


GENERATORS = {"sample": sample_generator, "orders": orders_generator}


def features(df, power: bool):
    from em_pipeline.lib.schema import CustomerSchema, Feature
    from em_pipeline.lib.transforms import FeatureTransform

    names = [c for c in df.columns if c != "customer_id"]
    if "customer_id" not in df.columns:
        df = df.assign(customer_id=np.arange(len(df)).astype(str))
    logs = {"total_spend", "visits_per_month", "avg_cart_size", "orders", "items_per_order",
            "visit_rate", "recency_days", "spend_per_order"}  # fmt: skip
    schema = CustomerSchema(
        features=tuple(
            Feature(c, "auto" if power else ("log1p" if c in logs else "none")) for c in names
        ),
        label_feature=names[0],
    )
    t = time.perf_counter()
    transform = FeatureTransform.fit(df, schema)
    X = transform.transform(df)
    return X, time.perf_counter() - t


def oracle(truth: np.ndarray, comp: np.ndarray, k: int) -> float:
    majority = np.array(
        [np.bincount(truth[comp == c], minlength=truth.max() + 1).argmax() if (comp == c).any()
         else 0 for c in range(k)]
    )  # fmt: skip
    return adjusted_rand_index(truth, majority[comp])


def supervised(X_raw: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    pred = cross_val_predict(HistGradientBoostingClassifier(random_state=0), X_raw, truth, cv=5)
    return adjusted_rand_index(truth, pred)


def run(generator: str, n: int, seed: int, power: bool, hgb: float | None) -> str:
    df, truth = GENERATORS[generator](n, seed)
    X, t_transform = features(df, power)
    t = time.perf_counter()
    res = select_model(
        X, range(1, 9), ["full", "diag", "spherical", "tied"], n_init=3, random_state=0,
        prior="default", min_class_size=1,
    )  # fmt: skip
    t_fit = time.perf_counter() - t
    best = res.best
    resp = best.predict_proba(X)
    comp = resp.argmax(axis=1)
    cells = [
        generator, f"{n:>7}", "power" if power else "log1p", f"K={best.n_components} "
        f"{best.covariance_type}", f"{adjusted_rand_index(truth, comp):.3f}",
    ]  # fmt: skip
    for method, stop in (("demp", "gap"), ("demp", "cutoff"), ("entropy", "gap")):
        t = time.perf_counter()
        merged = merge_components(resp, method, stop=stop)
        t_merge = time.perf_counter() - t
        ari = adjusted_rand_index(truth, merged.posteriors(resp).argmax(axis=1))
        cells.append(f"{merged.n_segments} / {ari:.3f} ({t_merge:.2f} s)")
    cells += [
        f"{oracle(truth, comp, best.n_components):.3f}",
        "" if hgb is None else f"{hgb:.3f}",
        f"{t_transform:.2f} s",
        f"{t_fit:.0f} s",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="2000,20000")
    p.add_argument("--generators", default="sample,orders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-supervised", action="store_true")
    p.add_argument("--transforms", default="log1p,power", help="log1p and/or power")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    print(
        "| data | n | transform | chosen | components ARI | DEMP gap: segments / ARI (merge time) "
        "| DEMP cutoff | entropy elbow | best grouping ARI | supervised ARI | transform time "
        "| sweep |"
    )
    print("|---|---:|---|---|---:|---|---|---|---:|---:|---:|---:|")
    for generator in args.generators.split(","):
        for n in (int(v) for v in args.sizes.split(",")):
            hgb = None
            if not args.no_supervised and n <= 200_000:
                df, truth = GENERATORS[generator](n, args.seed)
                raw = df.drop(columns=["customer_id"], errors="ignore").to_numpy(dtype=float)
                hgb = supervised(raw, truth)
            for transform in args.transforms.split(","):
                print(run(generator, n, args.seed, transform == "power", hgb), flush=True)


if __name__ == "__main__":
    main()
