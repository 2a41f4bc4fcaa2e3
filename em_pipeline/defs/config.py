"""Run-time settings of the assets and checks (``dg.Config``; editable in the launchpad).

Each class is turned straight into plain Python / em_core arguments inside its asset; no Dagster
type reaches em_core. Criteria follow scikit-learn's sign: lower BIC / AIC / ICL is better.
"""

import codecs
from typing import Literal

import dagster as dg
from pydantic import Field, field_validator

from em_core._typing import Criterion, InitMethod
from em_core.models import ALIASES, MODEL_NAMES, canonical_model

#: Covariance models the configs accept: mclust's 14 names and scikit-learn's four aliases.
COV_TYPES = (*ALIASES, *MODEL_NAMES)
PriorChoice = Literal["default", "none"]
_PRIOR_HELP = (
    "'default': MAP-EM with mclust's conjugate prior (priorControl(); keeps components on tied "
    "integer values from collapsing), 'none': maximum likelihood with the collapse guard."
)

#: the smallest segment share (segment_model's min_segment_share; the check gates at it)
DEFAULT_MIN_SEGMENT_SHARE = 0.02


def _check_models(v: list[str]) -> list[str]:
    if not v:
        raise ValueError(f"covariance_types must name at least one of {COV_TYPES}")
    for c in v:
        canonical_model(c)  # raises with the list of valid names
    return v


class IngestConfig(dg.Config):
    """``raw_customers``: what to do with rows that do not fit the schema."""

    unknown_columns: Literal["quarantine", "ignore"] = Field(
        default="quarantine",
        description="Rows of a file carrying columns outside the schema: 'quarantine' them "
        "(reason unknown_columns), or 'ignore' the extra columns (listed in the metadata).",
    )
    duplicates: Literal["quarantine_all", "keep_first"] = Field(
        default="quarantine_all",
        description="Rows sharing a customer id: quarantine every copy, or keep the first one "
        "(in file-name order) and quarantine the others.",
    )
    encoding: str = Field(
        default="auto",
        description="Text encoding of the drop's CSV files: 'auto' (UTF-16 by its byte-order "
        "mark, else UTF-8 with or without BOM) or a codec name declared for the drop, e.g. "
        "'latin-1' or 'cp1252'.",
    )
    undecodable_files: Literal["skip", "fail"] = Field(
        default="skip",
        description="A file the encoding cannot decode: 'skip' it (listed with the offending "
        "byte and its row count; the rest of the drop goes on) or 'fail' the drop.",
    )
    outlier_robust_z: float = Field(
        default=50.0,
        ge=0,
        description="Quarantine a value more than this many robust SDs (spread of the central "
        "98%, /4.65) from the drop's median as out_of_range, for features the model sees on the "
        "raw scale; 0 = off (both limits).",
    )
    outlier_robust_z_log: float = Field(
        default=10.0,
        gt=0,
        description="The same limit for features the model sees on a log scale (log, log1p), "
        "where z counts orders of magnitude: a whale spending 60x the median reaches about 5, "
        "a 10^9-day recency 14.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, v: str) -> str:
        if v != "auto":
            codecs.lookup(v)  # LookupError names an unknown encoding
        return v


class ImputeConfig(dg.Config):
    """``imputed_customers``: the EM model used to fill missing cells with E[x_mis | x_obs]."""

    k_min: int = Field(default=1, ge=1, description="Smallest number of components tried.")
    k_max: int = Field(default=4, ge=1, description="Largest number of components tried.")
    covariance_type: str = Field(
        default="full", description="Covariance model (mclust name or full/tied/diag/spherical)."
    )
    prior: PriorChoice = Field(default="default", description=_PRIOR_HELP)
    n_init: int = Field(default=2, ge=1, description="EM restarts per candidate.")
    tol: float = Field(default=1e-5, gt=0, description="EM convergence tolerance.")
    max_iter: int = Field(default=300, ge=1, description="Maximum EM iterations per restart.")
    reg_covar: float = Field(default=1e-6, ge=0, description="Added to covariance diagonals.")
    seed: int = Field(default=0, description="Random seed.")
    n_draws: int = Field(
        default=0,
        ge=0,
        description="Number of multiple imputations drawn from p(x_mis | x_obs) and stored as "
        "imputed_draws.parquet (0 = none).",
    )

    @field_validator("covariance_type")
    @classmethod
    def _known_covariance_type(cls, v: str) -> str:
        return _check_models([v])[0]


class SegmentModelConfig(dg.Config):
    """``segment_model``: the model-selection sweep (K x covariance type, with restarts)."""

    k_min: int = Field(default=1, ge=1, description="Smallest number of segments K tried.")
    k_max: int = Field(default=8, ge=1, description="Largest number of segments K tried.")
    k_limit: int | None = Field(
        default=16,
        ge=1,
        description="With segments='merged': when BIC chooses K = k_max, the chosen covariance "
        "type is also tried at K+1, K+2, and so on two at a time while BIC keeps choosing the "
        "largest K tried, up to this (em_core select_model(k_limit)). Components are merged "
        "into segments, so more components do not mean more segments, and too few leave "
        "components straddling segments. None = the range k_min..k_max only (always so with "
        "segments='components').",
    )
    covariance_types: list[str] = Field(
        default=["full", "diag", "spherical", "tied"],
        description="Covariance models tried: mclust's EII ... VVV or the aliases full (VVV), "
        "tied (EEE), diag (VVI), spherical (VII).",
    )
    prior: PriorChoice = Field(default="default", description=_PRIOR_HELP)
    criterion: Criterion = Field(
        default="bic", description="Selection criterion (lower is better)."
    )
    n_init: int = Field(default=3, ge=1, description="EM restarts per candidate.")
    tol: float = Field(default=1e-6, gt=0, description="EM convergence tolerance.")
    max_iter: int = Field(default=500, ge=1, description="Maximum EM iterations per restart.")
    reg_covar: float = Field(default=1e-6, ge=0, description="Added to covariance diagonals.")
    init: InitMethod = Field(
        default="auto",
        description="Start of each restart: 'auto' (first restart from mclust's model-based "
        "hierarchical agglomeration, the others k-means++), 'hierarchical', 'k-means++' or "
        "'random_from_data'.",
    )
    n_screen: int = Field(
        default=1,
        ge=1,
        description="emEM screening: each k-means++ restart draws this many starts, runs each "
        "a few EM iterations and continues the best (1 = off; reaches better optima on small "
        "data, costs more per candidate).",
    )
    acceleration: Literal["none", "squarem"] = Field(
        default="squarem",
        description="EM acceleration of every restart: 'squarem' runs SQUAREM cycles (two plain "
        "EM steps, then a safeguarded extrapolation; the same optimum in fewer E-steps, "
        "bench/acceleration.py); 'none' = plain EM.",
    )
    seed: int = Field(default=0, description="Random seed (same seed + data = same model).")
    min_class_size: int = Field(
        default=1,
        ge=0,
        description="A candidate with a component that is the most probable one for fewer "
        "customers than this is passed over (1: every published segment has a customer; 0: "
        "choose by the criterion alone). Candidates that empty a component (expected size "
        "below one customer) are never chosen, whatever this says.",
    )
    segments: Literal["merged", "components"] = Field(
        default="merged",
        description="'merged': the mixture (fitted for the density) has its components merged "
        "into segments by DEMP (em_core.merging; a segment's probability is the sum of its "
        "components'), matched to the champion's segments by where their customers come from "
        "(mutual majority); the merge path goes to MLflow. 'components': each component is a "
        "segment (BIC adds components as the customer base grows).",
    )
    min_segment_share: float = Field(
        default=DEFAULT_MIN_SEGMENT_SHARE,
        ge=0,
        lt=1,
        description="The smallest share of the customers a segment may hold. With "
        "segments='merged', a group of components whose expected share is below it cannot be a "
        "segment and is merged first into the group it overlaps most (DEMP), whatever the cutoff "
        "says (the merge path marks it 'forced'). The min_segment_share check gates the "
        "published segments at the same share (recorded in the model JSON), so it only catches "
        "what the merge could not fix. 0 = no forced merges.",
    )
    dequantize: bool = Field(
        default=True,
        description="Fit the mixture to each value dequantised within its rounding unit "
        "(em_core.dequantize: whole days, whole-number carts among ratios, cents), so that no "
        "component collapses onto tied values; the jitter is a fixed function of customer id and "
        "feature (seeded by `seed`). Posteriors, segments and scores use the recorded values.",
    )
    warm_start: bool = Field(
        default=True,
        description="Race the champion's parameters (as one extra restart of the candidate with "
        "the champion's K and covariance type) against the fresh restarts.",
    )
    max_match_distance: float | None = Field(
        default=None,
        gt=0,
        description="Largest Bhattacharyya distance at which a component aligned to a champion "
        "segment keeps its id; a farther one becomes a new segment and the champion's is retired. "
        "None = keep every match of the Hungarian alignment.",
    )

    @field_validator("covariance_types")
    @classmethod
    def _known_covariance_types(cls, v: list[str]) -> list[str]:
        return _check_models(v)


class QuarantineCheckConfig(dg.Config):
    max_share: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Largest tolerated share of quarantined input rows; above it the run stops.",
    )


class MinSegmentShareConfig(dg.Config):
    min_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Smallest tolerated segment share; a smaller segment stops publication. "
        "None = segment_model's min_segment_share for the run date (recorded in its model JSON), "
        "the one setting of the smallest segment.",
    )


# ------------------------------------------------------------------------------ drift checks
# Thresholds of the blocking checks on ``segment_drift``. A failure stops ``published_segments``:
# the new model stays logged in MLflow but is not promoted, and BI keeps the champion's tables.


class DriftAriConfig(dg.Config):
    min_ari: float = Field(
        default=0.6,
        ge=-1,
        le=1,
        description="Smallest tolerated adjusted Rand index between the champion's and tonight's "
        "segments of the customers present in both.",
    )


class DriftPsiConfig(dg.Config):
    max_psi: float = Field(
        default=0.25,
        ge=0,
        description="Largest tolerated population stability index of any feature (champion's "
        "snapshot vs tonight's; rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major).",
    )


class DriftDistanceConfig(dg.Config):
    max_distance: float = Field(
        default=1.0,
        ge=0,
        description="Largest tolerated Bhattacharyya distance between a retained segment's "
        "component tonight and its champion component.",
    )


class DriftShareConfig(dg.Config):
    max_share_change: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Largest tolerated absolute change of any segment's share of customers "
        "(new segments count from 0, retired ones to 0).",
    )
