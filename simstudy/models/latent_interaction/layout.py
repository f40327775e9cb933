"""Static layout of a latent interaction variant: indicators, estimand names, OLS helpers.

Shared by the model (:mod:`simstudy.models.latent_interaction`), its Gibbs sampler
(:mod:`simstudy.models.latent_interaction.gibbs`) and its scale moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.errors import InputError
from simstudy.spec import with_defaults

FACTORS = ("eta_x", "eta_m", "eta_y")
DEFAULT_STRUCTURE: dict[str, Any] = {"moderator": "latent", "nominal": False}
MODERATORS = ("latent", "observed")


def check_structure(raw: Any) -> dict[str, Any]:
    """Validate ``model.structure``; returns it with defaults filled in."""
    s = with_defaults(raw, DEFAULT_STRUCTURE)
    if s["moderator"] not in MODERATORS:
        raise InputError("model.structure.moderator", s["moderator"], "latent or observed")
    if not isinstance(s["nominal"], bool):
        raise InputError("model.structure.nominal", s["nominal"], "true or false")
    return s


class Layout:
    """Indicators, estimand names and extra variables of one variant (all static)."""

    def __init__(self, structure: Mapping[str, Any] | None) -> None:
        structure = check_structure(structure)
        self.observed_moderator = structure["moderator"] == "observed"
        self.nominal = bool(structure["nominal"])
        groups = ("x", "y") if self.observed_moderator else ("x", "m", "y")
        self.items = tuple(f"{g}{i}" for g in groups for i in (1, 2, 3))
        self.factor_of = np.array([FACTORS.index(f"eta_{x[0]}") for x in self.items])
        self.marker = np.array([x.endswith("1") for x in self.items])
        self.onehot = np.eye(3)[self.factor_of]
        self.mod = "w" if self.observed_moderator else "eta_m"
        m = self.mod
        self.structural = (f"{m}~eta_x", "eta_y~eta_x", f"eta_y~{m}", f"eta_y~eta_x:{m}")
        self.slopes = (f"eta_y~eta_x@{m}=-1SD", f"eta_y~eta_x@{m}=+1SD")
        self.effects = ("eta_y~d2", "eta_y~d3") if self.nominal else ()
        self.regression = self.structural + self.slopes + self.effects
        loadings = tuple(
            f"{FACTORS[f]}=~{x}"
            for x, f, mk in zip(self.items, self.factor_of, self.marker, strict=True)
            if not mk
        )
        variances = ("eta_x~~eta_x", f"{m}~~{m}", "eta_y~~eta_y")
        residuals = tuple(f"{x}~~{x}" for x in self.items)
        extra = ("w~1",) if self.observed_moderator else ()
        if self.nominal:
            extra += ("eta_x~d2", "eta_x~d3", "P(d=2)", "P(d=3)")
        self.bayes = self.regression + loadings + variances + residuals + extra

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Observed variables besides the indicators, in data order."""
        return (("w",) if self.observed_moderator else ()) + (("d",) if self.nominal else ())


def score_means(data: Mapping[str, Any], layout: Layout) -> jax.Array:
    """Per-person mean of the observed indicators of each factor (sum-score scale)."""
    obs = data["observed"].astype(float)
    onehot = jnp.asarray(layout.onehot)
    total = (data["y"] * obs) @ onehot
    scores = total / jnp.maximum(obs @ onehot, 1.0)
    if layout.observed_moderator:
        scores = scores.at[:, 1].set(data["w"])
    return scores


def ols(design: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """OLS coefficients and their estimated covariance matrix."""
    xtx = design.T @ design
    beta = jnp.linalg.solve(xtx, design.T @ target)
    dof = design.shape[0] - design.shape[1]
    s2 = ((target - design @ beta) ** 2).sum() / dof
    return beta, s2 * jnp.linalg.inv(xtx)


def regressions(
    layout: Layout, ex, em, ey, dummies=None
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """OLS of the moderator on eta_x and of eta_y on the rest; slopes at mean ± 1 SD."""
    ones = jnp.ones_like(ex)
    beta_m, v_m = ols(jnp.stack([ones, ex], 1), em)
    columns = [ones, ex, em, ex * em]
    if dummies is not None:
        columns += [dummies[:, 0], dummies[:, 1]]
    beta, v = ols(jnp.stack(columns, 1), ey)
    mean_m, sd_m = em.mean(), jnp.std(em, ddof=1)
    lo, hi = mean_m - sd_m, mean_m + sd_m
    m = layout.mod
    est = {
        f"{m}~eta_x": beta_m[1],
        "eta_y~eta_x": beta[1],
        f"eta_y~{m}": beta[2],
        f"eta_y~eta_x:{m}": beta[3],
        f"eta_y~eta_x@{m}=-1SD": beta[1] + lo * beta[3],
        f"eta_y~eta_x@{m}=+1SD": beta[1] + hi * beta[3],
    }
    var = {
        f"{m}~eta_x": v_m[1, 1],
        "eta_y~eta_x": v[1, 1],
        f"eta_y~{m}": v[2, 2],
        f"eta_y~eta_x:{m}": v[3, 3],
        f"eta_y~eta_x@{m}=-1SD": v[1, 1] + lo**2 * v[3, 3] + 2 * lo * v[1, 3],
        f"eta_y~eta_x@{m}=+1SD": v[1, 1] + hi**2 * v[3, 3] + 2 * hi * v[1, 3],
    }
    if dummies is not None:
        est |= {"eta_y~d2": beta[4], "eta_y~d3": beta[5]}
        var |= {"eta_y~d2": v[4, 4], "eta_y~d3": v[5, 5]}
    return est, var
