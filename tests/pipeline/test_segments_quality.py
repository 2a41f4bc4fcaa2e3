"""The nightly job's segments against the sample generators' truth at two sizes of the customer
base: the true number of segments, and an ARI close to what a supervised classifier reaches on
the same columns (scikit-learn, test-only). The order generator's segments are not Gaussian in
any feature space (one-time buyers lie on a curve, carts and days are whole numbers)."""

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import failure_messages, run_pipeline

from em_core import adjusted_rand_index
from em_pipeline.defs.resources import SampleCustomerSource
from em_pipeline.lib.segments import SegmentBundle

pytestmark = pytest.mark.slow  # whole nights: scheduled first (tests/conftest.py)

# the nightly CLI's defaults for the sweep, with components merged into segments
MERGED = {"ops": {"segment_model": {"config": {"segments": "merged"}}}}
RUN_DATE = "2024-05-01"


def supervised_ari(X: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    model = HistGradientBoostingClassifier(random_state=0)
    return adjusted_rand_index(truth, cross_val_predict(model, X, truth, cv=5))


@pytest.mark.parametrize("generator", ["orders", "lognormal"])
@pytest.mark.parametrize("n", [2_000, 20_000])
def test_the_true_segments_are_published_at_every_size(tmp_path, n, generator):
    source = SampleCustomerSource(
        root=str(tmp_path / "drops"), n_customers=n, seed=0, generator=generator
    )
    result = run_pipeline(tmp_path, RUN_DATE, run_config=MERGED, resources={"source": source})
    assert result.success, failure_messages(result)
    part = tmp_path / "runs" / RUN_DATE
    bundle = SegmentBundle.load(part / "segment_model.json")
    scored = pd.read_parquet(part / "customer_segments.parquet")
    truth = source.write(RUN_DATE).true_segment
    scored = scored[scored["customer_id"].isin(truth.keys())]
    true = scored["customer_id"].map(truth).to_numpy()
    assert bundle.n_segments == len(set(true)) == 4
    snapshot = pd.read_parquet(part / "raw_customers.parquet").set_index("customer_id")
    X = snapshot.loc[scored["customer_id"], bundle.schema.feature_names].to_numpy(dtype=float)
    ari = adjusted_rand_index(true, scored["segment"].to_numpy())
    supervised = supervised_ari(X, true)
    print(f"{generator} n={n}: ARI {ari:.3f}, supervised {supervised:.3f}")
    assert ari >= 0.85 * supervised
