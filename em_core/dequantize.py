"""Uniform dequantisation of recorded values that sit on a coarse lattice.

A Gaussian mixture is a density for continuous data, but exports record counts (days, items),
ratios of small counts (items per order of a one-time buyer is a whole number) and amounts that
tie at zero. Such ties are atoms: a component can collapse onto one (its variance along the
feature → 0, its likelihood → ∞), and atoms a unit apart become separate components that no
overlap-based merge joins again. A value recorded as x with rounding unit u stands for the interval
[x − u/2, x + u/2); dequantisation fits the mixture to

    x̃ = x + u · (v − ½),    v ~ U(0, 1),

whose continuous log-likelihood is a lower bound of the discrete one (Theis, van den Oord &
Bethge 2016), so that no component can collapse onto a tie.

The unit is found per feature and per value, in decimal steps ``DECIMAL_UNITS`` (1, 0.1, …):

- the feature's *resolution* r is the coarsest unit every observed value is a multiple of (None
  when there is none: continuous values are left alone);
- a coarser unit u is a *lattice* of the feature when the share of values on it is at least
  ``LATTICE_EXCESS`` × r / u, the share a smooth density recorded at resolution r would put
  there: whole-number carts among ratios of items to orders, not a price that happens to be
  round;
- a value's unit is the coarsest lattice it lies on, else r.

The unit never exceeds 1 (a count's own unit), so 10 or 0 is dequantised by ±½.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._typing import ArrayLike, FloatArray

#: Candidate rounding units, coarsest first.
DECIMAL_UNITS: tuple[float, ...] = (1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6)
#: How much more often than at resolution r values must sit on a coarser unit to make it a lattice.
LATTICE_EXCESS = 5.0


@dataclass(frozen=True)
class Lattice:
    """Where one feature's recorded values sit: its resolution and its coarser lattices."""

    resolution: float | None  # None: no common decimal unit, the values are left as they are
    coarse_units: tuple[float, ...] = ()  # lattices coarser than the resolution, coarsest first

    def units(self, x: ArrayLike) -> FloatArray:
        """Each value's rounding unit (0 for NaN, and everywhere when there is no resolution)."""
        x = np.asarray(x, dtype=float)
        if self.resolution is None:
            return np.zeros_like(x)
        units = np.where(np.isnan(x), 0.0, self.resolution)
        for unit in reversed(self.coarse_units):  # finest first, so the coarsest one wins
            units = np.where(_on_unit(x, unit), unit, units)
        return units

    def to_dict(self) -> dict:
        return {"resolution": self.resolution, "coarse_units": list(self.coarse_units)}

    @classmethod
    def from_dict(cls, d: dict) -> Lattice:
        res = d.get("resolution")
        return cls(None if res is None else float(res), tuple(float(u) for u in d["coarse_units"]))

    def describe(self) -> str:
        if self.resolution is None:
            return "continuous"
        coarse = ", ".join(f"{u:g}" for u in self.coarse_units)
        return f"unit {self.resolution:g}" + (f" (ties on {coarse})" if coarse else "")


def fit_lattice(x: ArrayLike) -> Lattice:
    """The resolution and coarser lattices of one feature's observed values (NaN ignored)."""
    x = np.asarray(x, dtype=float)
    observed = x[~np.isnan(x)]
    if observed.size == 0:
        return Lattice(None)
    resolution = next((u for u in DECIMAL_UNITS if _on_unit(observed, u).all()), None)
    if resolution is None:
        return Lattice(None)
    coarse = tuple(
        u
        for u in DECIMAL_UNITS
        if u > resolution and _on_unit(observed, u).mean() >= LATTICE_EXCESS * resolution / u
    )
    return Lattice(resolution, coarse)


def dequantize(x: ArrayLike, lattice: Lattice, uniforms: ArrayLike) -> FloatArray:
    """x + unit · (v − ½) with v the given U(0, 1) draws, one per value (NaN stays NaN)."""
    x = np.asarray(x, dtype=float)
    v = np.asarray(uniforms, dtype=float)
    if v.shape != x.shape:
        raise ValueError(f"uniforms have shape {v.shape}, values {x.shape}")
    return x + lattice.units(x) * (v - 0.5)


def _on_unit(x: FloatArray, unit: float) -> np.ndarray:
    """Whether each value is a whole multiple of ``unit`` (to float precision)."""
    q = x / unit
    with np.errstate(invalid="ignore"):
        return np.abs(q - np.round(q)) <= 1e-6 + 1e-12 * np.abs(q)
