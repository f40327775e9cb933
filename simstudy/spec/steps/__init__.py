"""The steps of the compiled Gibbs sweep, one module per kind (:mod:`.base` says what a step is).

:func:`build` is the one place that names the kinds: it lists a layout's steps in the order
the sweep runs them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from simstudy.spec.steps.base import Step
from simstudy.spec.steps.coefficients import Coefficients
from simstudy.spec.steps.covariance import Covariance
from simstudy.spec.steps.factor_location import factor_locations
from simstudy.spec.steps.factor_scale import FactorScale, factor_scales
from simstudy.spec.steps.nodes import NodeGroup
from simstudy.spec.steps.nominal import NominalPredictor
from simstudy.spec.steps.ordered import ordered_steps
from simstudy.spec.steps.random_effects import RandomEffects
from simstudy.spec.steps.variances import Variances

if TYPE_CHECKING:
    from simstudy.spec.sweep import Layout, Priors


def build(lay: Layout) -> tuple[Step, ...]:
    """The steps of a layout in sweep order.

    0. each ordered variable's thresholds and latent responses, then each nominal predictor's
    missing categories and probabilities; 1. the level-1 node
    groups; 2. each ``(... | g)`` block's random effects with their scale and location moves;
    3. the indicators' intercepts and loadings from sums; 4. each general equation's
    coefficients; 5. the variances, in one batch; 6. covariance blocks of two or more; 7. the
    latent factors' scale moves, then 8. their location moves.

    Start keys: one per general equation's coefficients, then one the node groups share, then
    the measurement's, then one per random-effect block, then one per ordered variable.
    """
    n_general = len(lay.general)
    measured = lay.measurement is not None
    first_ordered = n_general + 1 + measured + sum(b.level is not None for b in lay.blocks)
    steps: list[Step] = list(ordered_steps(lay, first_ordered))
    steps += [NominalPredictor.of(lay, nom) for nom in lay.nominals]
    steps += [NodeGroup.of(lay, k, n_general) for k in range(len(lay.node_groups))]
    leveled = [b for b in lay.blocks if b.level is not None]
    first_re = n_general + 1 + measured
    steps += [RandomEffects.of(lay, b, first_re + k) for k, b in enumerate(leveled)]
    if measured:
        steps.append(replace(lay.measurement, start_key=n_general + 1))
    steps += [
        Coefficients(i, lay.equations[i].target, lay.free_coefs[i], k)
        for k, i in enumerate(lay.general)
    ]
    variances = Variances.of(lay)
    if variances.size:
        steps.append(variances)
    steps += [Covariance(b) for b in lay.blocks if len(b.members) > 1]
    free_coefs, blocks = lay.free_coefs, lay.blocks
    steps += factor_scales(
        lay.equations, free_coefs, lay.general, blocks, lay.latents, lay.measurement, lay.ordered
    )
    steps += factor_locations(
        lay.equations, lay.general, blocks, lay.latents, lay.measurement, lay.ordered
    )
    return tuple(steps)


def active(lay: Layout, priors: Priors) -> tuple[bool, ...]:
    """Per step of ``lay``, whether it runs under ``priors``.

    Under the ``inverse_wishart`` covariance family a factor's scale move of a covariance
    block's variance does not: its draw takes one prior per variance (half-normal or
    inverse-gamma), and the inverse-Wishart's term in the factor's scale depends on the whole
    matrix. The plain updates keep the chain exact without it.
    """
    iw = priors.cov_prior == "inverse_wishart"
    return tuple(
        not (iw and isinstance(s, FactorScale) and s.variance[0] == "block") for s in lay.steps
    )


def n_start_keys(lay: Layout) -> int:
    """How many keys a start splits into (more than :func:`build` hands out)."""
    return 4 + len(lay.equations) + len(lay.blocks) + len(lay.ordered)
