"""mclust's 14 covariance models: names, free-parameter counts, E-step kernels and M-steps.

Celeux & Govaert (1995) write each covariance as Σ_k = λ_k D_k A_k D_kᵀ (volume λ_k, orientation
D_k orthogonal, shape A_k diagonal with det A_k = 1); each of the three is Equal across
components, Variable, or the Identity, which gives the names EII … VVV. The E-step needs only a
kernel that evaluates the resulting Σ_k, so every model maps onto one of the four existing
kernels (``spherical``, ``diag``, ``tied``, ``full``) and the parameters keep that kernel's
layout; the model lives in the M-step, which works on the expected scatter matrices

    W_k = Σ_i r_ik E[(x_i − ȳ_k)(x_i − ȳ_k)ᵀ | x_i,obs],   ȳ_k = Σ_i r_ik E[x_i] / n_k,

so missing cells need nothing beyond today's E-step. Closed forms (n = Σ_k n_k, gm = geometric
mean, Ω_k = eigenvalues of W_k with eigenvectors D_k, in decreasing order):

    EII σ² = Σ tr W_k / (n d)          VII σ²_k = tr W_k / (n_k d)
    EEI B  = diag Σ W_k / n            VVI B_k  = diag W_k / n_k
    EVI λ  = Σ_k gm(diag W_k) / n,  A_k = diag W_k / gm
    EEE Σ  = Σ W_k / n                 VVV Σ_k  = W_k / n_k
    EEV Σ_k = D_k diag(Σ_j Ω_j) D_kᵀ / n
    EVV λ  = Σ_k det(W_k)^{1/d} / n,  C_k = W_k / det(W_k)^{1/d}

and alternating ones (each step lowers Σ_k tr(W_k Σ_k⁻¹) + n_k log det Σ_k; they start from the
previous parameters, so EM stays monotone): VEI, VEV and VEE alternate the volumes
λ_k = tr(W_k (D A Dᵀ)⁻¹) / (n_k d) with the shared shape (Celeux & Govaert 1995); EVE and VVE
update the common orientation D by the two majorise-minimise steps of Browne & McNicholas (2014)
between closed-form shapes and volumes, as mclust does.

With a conjugate prior (:mod:`em_core.prior`, Fraley & Raftery 2007) the M-step is mclust's
posterior-mode step, formula for formula, including its per-model choices (see
:func:`maximize_model`).
"""

from dataclasses import dataclass

import numpy as np

from ._fast_kernels import HAVE_NUMBA
from ._mstep_kernels import orientation_iterations, vee_iterations, volumes_and_shape_iterations
from ._typing import CovarianceType, FloatArray
from .linalg import geometric_mean
from .prior import PriorTerms

#: mclust's model names in mclust's order.
MODEL_NAMES: tuple[str, ...] = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip
#: scikit-learn's names, kept as aliases.
ALIASES: dict[str, str] = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
_KERNEL: dict[str, CovarianceType] = {
    "EII": "spherical", "VII": "spherical",
    "EEI": "diag", "VEI": "diag", "EVI": "diag", "VVI": "diag",
    "EEE": "tied",
}  # fmt: skip

#: Inner iterations of the alternating M-steps: relative change below which they stop. √ε, as
#: mclust's emControl(tol = c(1e-5, sqrt(.Machine$double.eps))) for its iterative M-steps.
INNER_TOL = float(np.sqrt(np.finfo(float).eps))
INNER_MAX_ITER = 500


def canonical_model(name: str) -> str:
    """The mclust name of ``name`` (an mclust name or a scikit-learn alias); ValueError if none."""
    if isinstance(name, str):
        if name in ALIASES:
            return ALIASES[name]
        if name.upper() in MODEL_NAMES:
            return name.upper()
    raise ValueError(
        f"unknown covariance_type {name!r}; choose one of mclust's models {', '.join(MODEL_NAMES)} "
        f"or the aliases {', '.join(f'{a} ({m})' for a, m in ALIASES.items())}"
    )


def kernel_type(model: str) -> CovarianceType:
    """The E-step kernel (and parameter layout) that evaluates ``model``'s covariances."""
    return _KERNEL.get(canonical_model(model), "full")


def n_covariance_parameters(model: str, n_components: int, n_features: int) -> int:
    """Free covariance parameters of ``model`` (mclust's ``nVarParams``)."""
    k, d = n_components, n_features
    rot = d * (d - 1) // 2
    return {
        "EII": 1, "VII": k, "EEI": d, "VEI": k + d - 1, "EVI": 1 + k * (d - 1), "VVI": k * d,
        "EEE": d * (d + 1) // 2, "VEE": k + d * (d + 1) // 2 - 1, "EVE": 1 + k * (d - 1) + rot,
        "VVE": k * d + rot, "EEV": d + k * rot, "VEV": k + d - 1 + k * rot,
        "EVV": 1 + k * (d * (d + 1) // 2 - 1), "VVV": k * d * (d + 1) // 2,
    }[canonical_model(model)]  # fmt: skip


def n_model_parameters(model: str, n_components: int, n_features: int) -> int:
    """Free parameters (mclust's ``nMclustParams``): K − 1 weights, K·d means, the covariance."""
    k, d = n_components, n_features
    return (k - 1) + k * d + n_covariance_parameters(model, k, d)


def min_component_mass(model: str, n_features: int) -> float:
    """Responsibility mass below which a component's own covariance parameters are not
    estimable: d + 1 points for a component-specific shape in a component-specific orientation
    (EVV, VVV), 2 for a component-specific shape or volume, 1 when everything but the mean and
    the orientation is shared. EEV's and VEV's shape is pooled over the components, so a
    component on fewer than d + 1 points still has a definite covariance (its orientation in the
    directions it does not span is arbitrary but costs nothing), as in mclust."""
    m = canonical_model(model)
    if m in ("EVV", "VVV"):
        return n_features + 1.0
    if m in ("EEE", "EEI", "EII", "EEV"):
        return 1.0
    return 2.0


# --------------------------------------------------------------------------- the M-step
@dataclass(frozen=True)
class Scatter:
    """What an M-step needs: masses n_k, weighted means ȳ_k and scatters W_k (full (K, d, d)
    for ellipsoidal models, diagonals (K, d) for diagonal and spherical ones)."""

    nk: FloatArray
    ybar: FloatArray
    W: FloatArray

    @property
    def full(self) -> bool:
        return self.W.ndim == 3


def _eigh_desc(W: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Eigenvalues (K, d) in decreasing order and eigenvectors (K, d, d) as columns."""
    vals, vecs = np.linalg.eigh(W)
    return vals[:, ::-1], vecs[:, :, ::-1]


def _volumes_and_shape(
    values: FloatArray, vol_den: FloatArray, lam0: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """V?? volumes λ_k and a shared normalised shape A from per-component spectra or diagonals
    ``values`` (K, d): λ_k = Σ_j values_kj / A_j / vol_den_k, A ∝ Σ_k values_k / λ_k, gm(A) = 1,
    alternated from ``lam0`` (default 1)."""
    K = values.shape[0]
    lam = np.ones(K) if lam0 is None else np.array(lam0, dtype=float)
    vol_den = np.broadcast_to(np.asarray(vol_den, dtype=float), (K,))
    if HAVE_NUMBA:
        return volumes_and_shape_iterations(
            np.ascontiguousarray(values, dtype=float), np.ascontiguousarray(vol_den), lam,
            INNER_TOL, INNER_MAX_ITER,
        )  # fmt: skip
    from . import reference  # the numpy fallback (imports estep, which imports this)

    return reference.volumes_and_shape_iterations(values, vol_den, lam, INNER_TOL, INNER_MAX_ITER)


def _vee_fit(W: FloatArray, nk: FloatArray, previous: FloatArray | None) -> FloatArray:
    """VEE: Σ_k = λ_k C with one shared C (det C = 1), alternated from the previous volumes."""
    lam0 = _previous_volumes(previous, W.shape[0])
    lam = np.ones(W.shape[0]) if lam0 is None else np.array(lam0, dtype=float)
    if HAVE_NUMBA:
        lam, c = vee_iterations(
            np.ascontiguousarray(W, dtype=float), np.ascontiguousarray(nk, dtype=float), lam,
            INNER_TOL, INNER_MAX_ITER,
        )  # fmt: skip
    else:
        from . import reference

        lam, c = reference.vee_iterations(W, nk, lam, INNER_TOL, INNER_MAX_ITER)
    return lam[:, None, None] * c[None]


def _orientation_start(W: FloatArray, previous: FloatArray | None) -> FloatArray:
    """O (rows = axes) from the previous fit's first covariance, else from the pooled scatter."""
    base = previous[0] if previous is not None and previous.ndim == 3 else W.sum(axis=0)
    _, vecs = np.linalg.eigh(base)
    return vecs[:, ::-1].T


def _common_orientation_fit(
    W: FloatArray, nk: FloatArray, previous: FloatArray | None, equal_volume: bool
) -> FloatArray:
    """EVE (equal_volume) or VVE: Σ_k = λ_(k) D A_k Dᵀ with a common orientation D."""
    n, d = nk.sum(), W.shape[1]
    O = _orientation_start(W, previous)
    omega = np.linalg.eigvalsh(W)[:, -1]
    if HAVE_NUMBA:
        O, shapes = orientation_iterations(
            np.ascontiguousarray(W, dtype=float), np.ascontiguousarray(nk, dtype=float),
            np.ascontiguousarray(O), np.ascontiguousarray(omega), bool(equal_volume),
            INNER_TOL, INNER_MAX_ITER,
        )  # fmt: skip
    else:
        from . import reference

        O, shapes = reference.orientation_iterations(
            W, nk, O, omega, equal_volume, INNER_TOL, INNER_MAX_ITER
        )
    if equal_volume:
        diag = np.einsum("ij,kjl,il->ki", O, W, O)
        shapes = shapes * (float(np.sum(diag / shapes)) / (n * d))
    return np.einsum("ji,kj,jl->kil", O, shapes, O)


def _previous_volumes(previous: FloatArray | None, k: int) -> FloatArray | None:
    """λ_k = det(Σ_k)^{1/d} of a previous full or diagonal layout (warm start of V-models)."""
    if previous is None or previous.shape[0] != k or previous.ndim < 2:
        return None
    if previous.ndim == 3:
        sign, logdet = np.linalg.slogdet(previous)
        return np.exp(logdet / previous.shape[1]) if np.all(sign > 0) else None
    return geometric_mean(previous)


def covariances_for_model(
    model: str,
    s: Scatter,
    *,
    previous: FloatArray | None = None,
    prior: PriorTerms | None = None,
) -> FloatArray:
    """Maximum-likelihood (or, with ``prior``, posterior-mode) covariances of ``model`` from the
    scatter, in the layout of :func:`kernel_type`; ``previous`` (same layout) warm-starts the
    alternating models."""
    m = canonical_model(model)
    nk, W, K = s.nk, s.W, s.nk.shape[0]
    n = nk.sum()
    d = s.ybar.shape[1]
    p = prior if prior is not None else PriorTerms.none(K, d, s.full)
    if m in ("EII", "VII"):
        tr = W.sum(axis=1) if not s.full else np.trace(W, axis1=1, axis2=2)
        tr = tr + p.trace_extra
        if m == "EII":
            return np.full(K, tr.sum() / (n * d + p.dof_extra(m, K, d)))
        return (p.scale_scalar + tr) / (nk * d + p.dof_extra(m, K, d))
    if m in ("EEI", "VEI", "EVI", "VVI"):
        diag = (np.diagonal(W, axis1=1, axis2=2) if s.full else W) + p.diag_extra
        if m == "EEI":
            pooled = p.scale_scalar + diag.sum(axis=0)
            return np.tile(pooled / (n + p.dof_extra(m, K, d)), (K, 1))
        diag = diag + p.scale_scalar
        if m == "VVI":
            return diag / (nk + p.dof_extra(m, K, d))[:, None]
        if m == "EVI":
            g = geometric_mean(diag)
            lam = g.sum() / (n + p.dof_extra(m, K, d))
            return lam * diag / g[:, None]
        lam, a = _volumes_and_shape(
            diag, nk * d + p.dof_extra(m, K, d), _previous_volumes(previous, K)
        )
        return lam[:, None] * a[None, :]
    W = W + p.matrix_extra
    if m == "EEE":
        return (p.scale_matrix + W.sum(axis=0)) / (n + p.dof_extra(m, K, d))
    W = W + p.scale_matrix
    if m == "VVV":
        return W / (nk + p.dof_extra(m, K, d))[:, None, None]
    if m == "EVV":
        g = np.exp(np.linalg.slogdet(W)[1] / d)
        return W * (g.sum() / n / g)[:, None, None]
    if m in ("EEV", "VEV"):
        vals, vecs = _eigh_desc(W)
        if m == "EEV":
            a = vals.sum(axis=0) / (n + p.dof_extra(m, K, d))
            return np.einsum("kij,j,klj->kil", vecs, a, vecs)
        lam, a = _volumes_and_shape(vals, nk * d, _previous_volumes(previous, K))
        return lam[:, None, None] * np.einsum("kij,j,klj->kil", vecs, a, vecs)
    if m == "VEE":
        return _vee_fit(W, nk, previous)
    return _common_orientation_fit(W, nk, previous, equal_volume=(m == "EVE"))
