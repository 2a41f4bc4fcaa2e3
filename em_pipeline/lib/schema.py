"""The customer schema: which columns a drop has and how each feature is transformed.

Plain dataclasses (no Dagster) so the library, the pyfunc model and the tests can share them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

#: Per-feature transform before standardising (see :mod:`em_core.power`): "auto" = Box-Cox for
#: positive values, Yeo-Johnson otherwise, λ by maximum likelihood; "mixture" = Box-Cox for
#: positive values, signed Yeo-Johnson otherwise, λ estimated within a Gaussian mixture
#: (:mod:`em_core.power_within`).
Transform = Literal[
    "mixture", "auto", "boxcox", "yeojohnson", "signed_yeojohnson", "log", "log1p", "none"
]
TRANSFORMS: tuple[Transform, ...] = get_args(Transform)


@dataclass(frozen=True)
class Feature:
    """One numeric behaviour feature of a customer."""

    name: str
    transform: Transform = "none"
    nonnegative: bool = True
    description: str = ""


DEFAULT_FEATURES: tuple[Feature, ...] = (
    Feature(
        "total_spend", "log1p", False, "net revenue: purchases minus refunds (EUR; may be negative)"
    ),
    Feature("visits_per_month", "log", True, "orders per month since the first order"),
    Feature("avg_cart_size", "log1p", True, "average number of items per order"),
    Feature("days_since_last_order", "log1p", True, "days since the most recent order"),
)


@dataclass(frozen=True)
class CustomerSchema:
    """The id column, the feature list and the feature that orders segment labels."""

    id_column: str = "customer_id"
    features: tuple[Feature, ...] = field(default=DEFAULT_FEATURES)
    label_feature: str = "total_spend"
    #: Largest plausible |value| of any feature; a larger one is quarantined (out_of_range).
    max_value: float = 1e12

    def __post_init__(self) -> None:
        if not self.max_value > 0:
            raise ValueError(f"max_value must be > 0, got {self.max_value}")
        names = self.feature_names
        if not names:
            raise ValueError("the schema needs at least one feature")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in the schema: {names}")
        if self.id_column in names:
            raise ValueError(f"id column {self.id_column!r} is also listed as a feature")
        if self.label_feature not in names:
            raise ValueError(
                f"label_feature {self.label_feature!r} is not one of the features {names}"
            )

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        return [self.id_column, *self.feature_names]

    def to_dict(self) -> dict:
        return {
            "id_column": self.id_column,
            "features": [asdict(f) for f in self.features],
            "label_feature": self.label_feature,
            "max_value": self.max_value,
        }

    @classmethod
    def from_dict(cls, d: dict) -> CustomerSchema:
        return cls(
            id_column=d["id_column"],
            features=tuple(Feature(**f) for f in d["features"]),
            label_feature=d["label_feature"],
            max_value=float(d.get("max_value", 1e12)),
        )
