"""SegmentBundle with several components per segment: a segment's probability is the sum of its
components', scoring and the JSON round trip keep it so."""

import numpy as np
import pandas as pd
import pytest

from em_core import GaussianMixture
from em_pipeline.lib.schema import CustomerSchema
from em_pipeline.lib.segments import SegmentBundle
from em_pipeline.lib.transforms import FeatureTransform

SCHEMA = CustomerSchema()
NAMES = SCHEMA.feature_names
D = len(NAMES)
IDENTITY = FeatureTransform(tuple(NAMES), ("none",) * D, (None,) * D, (0.0,) * D, (1.0,) * D)


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0, 0], [1.5, 0, 0, 0], [8.0, 0, 0, 0]])
    X = np.vstack([c + rng.normal(size=(150, D)) for c in centres])
    X[::11, 2] = np.nan
    df = pd.DataFrame(X, columns=NAMES)
    df.insert(0, "customer_id", [f"C{i}" for i in range(len(df))])
    return df


def test_merged_components_score_as_one_segment_and_round_trip(customers):
    X = customers[NAMES].to_numpy()
    model = GaussianMixture(3, random_state=0).fit(X)
    near = np.argsort(model.means_[:, 0])  # the two overlapping components form segment 7
    mapping = [0] * 3
    mapping[near[0]] = mapping[near[1]] = 7
    mapping[near[2]] = 9
    bundle = SegmentBundle(model, SCHEMA, IDENTITY, mapping, {7: "low", 9: "high"})
    assert bundle.n_segments == 2 and bundle.segment_ids == [7, 9]

    proba = model.predict_proba(X)
    want = np.column_stack([proba[:, near[:2]].sum(axis=1), proba[:, near[2]]])
    np.testing.assert_allclose(bundle.probabilities(customers), want, rtol=1e-12)
    scored = bundle.score(customers)
    assert list(scored.columns) == [
        "segment", "segment_label", "confidence", "component", "prob_segment_7", "prob_segment_9",
    ]  # fmt: skip
    assert (scored["component"] == proba.argmax(axis=1)).all()
    assert scored["segment"].tolist() == [7 if p >= 0.5 else 9 for p in want[:, 0]]
    np.testing.assert_allclose(scored["confidence"], want.max(axis=1))

    again = SegmentBundle.from_json(bundle.to_json())
    assert again.component_to_segment == mapping
    pd.testing.assert_frame_equal(again.score(customers), scored)


def test_labels_must_name_exactly_the_segments(customers):
    model = GaussianMixture(2, random_state=0).fit(customers[NAMES].to_numpy())
    with pytest.raises(ValueError, match="labels"):
        SegmentBundle(model, SCHEMA, IDENTITY, [3, 3], {3: "all", 4: "none"})
    with pytest.raises(ValueError, match="non-negative"):
        SegmentBundle(model, SCHEMA, IDENTITY, [-1, 0], {-1: "x", 0: "y"})
