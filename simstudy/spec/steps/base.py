"""What every step of the compiled Gibbs sweep is: sizes, start, update and recorded values.

A step is one frozen dataclass built from the spec at layout time (:func:`simstudy.spec.
steps.build`). Per sweep it declares the noise it needs (:class:`NoiseSizes`), gets its share
(:class:`Noise`) and returns the state with its part updated. The sweep draws every step's
normals in one call and its uniforms in one more, laid out in the order of the steps: plain
normals first, then the candidates of every gamma variate (:func:`~simstudy.blocks.
conjugate.unit_gamma`); per step, its plain uniforms, then its gamma variates' boost uniforms
and candidates' uniforms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import jax

if TYPE_CHECKING:
    from simstudy.blocks.conjugate import IndicatorSums
    from simstudy.spec.sweep import Layout, Priors

#: A sweep state: ``coef``, ``var``, ``nodes``, ``re``, ``cov``, ``meas``, ``prob``, ``thr``
#: (name -> array, or an ordered variable's threshold sampler state).
State = dict[str, Any]
#: The parts of a state; a step's ``init`` fills the entries it owns.
STATE_PARTS = ("coef", "var", "nodes", "re", "cov", "meas", "prob", "thr")
#: Candidates per gamma variate drawn with a sweep's noise
#: (:func:`~simstudy.blocks.conjugate.unit_gamma`).
GAMMA_TRIES = 4


@dataclass(frozen=True)
class NoiseSizes:
    """The noise one step takes per sweep.

    ``normal`` and ``uniform``: named counts of standard normals and U(0, 1); ``gamma``: gamma
    variates (each :data:`GAMMA_TRIES` candidate normals and uniforms and a boost uniform);
    ``keys``: PRNG keys, for draws that are not from fixed-size noise (a Wishart proposal).
    """

    normal: Mapping[str, int] = field(default_factory=dict)
    uniform: Mapping[str, int] = field(default_factory=dict)
    gamma: int = 0
    keys: int = 0

    @property
    def n_normal(self) -> int:
        """Standard normals this step takes, its gamma candidates' included."""
        return sum(self.normal.values()) + GAMMA_TRIES * self.gamma

    @property
    def n_uniform(self) -> int:
        """Uniforms this step takes, its gamma variates' included."""
        return sum(self.uniform.values()) + (1 + GAMMA_TRIES) * self.gamma


@dataclass(frozen=True)
class Noise:
    """One step's share of a sweep's noise, by the names of its :class:`NoiseSizes`.

    ``gamma``: ``(key, normal, uniform, boost)``, the arguments ``unit_gamma`` takes (its key
    feeds only the rare extra rounds); None without gamma variates.
    """

    normal: Mapping[str, jax.Array]
    uniform: Mapping[str, jax.Array]
    gamma: tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]] | None = None
    keys: tuple[jax.Array, ...] = ()


@dataclass(frozen=True)
class Context:
    """What a sweep's steps share beyond the state.

    ``terms``: the indicators' information on each measured factor's scores (fixed while the
    scores are drawn); ``sums``: the indicators' sums at the drawn scores; ``adapt``: whether
    this is a warm-up sweep (proposals may learn their scale then, never after).
    """

    layout: Layout
    priors: Priors
    weights: Mapping[int, jax.Array]  # per general equation: 0/1 per row
    terms: tuple[jax.Array, jax.Array] | None = None
    sums: IndicatorSums | None = None
    adapt: bool = False

    def with_(self, **changes: Any) -> Context:
        """The context with ``changes``."""
        return replace(self, **changes)


@runtime_checkable
class Step(Protocol):
    """One block of the sweep (see the module docstring)."""

    #: Index of this step's key among the start keys (None: its start draws nothing).
    start_key: int | None

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """The noise this step takes per sweep."""

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """The step's part of the start state, as ``{part: {name: value}}``."""

    def begin(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """What this step gives the sweep's other steps before any of them runs."""

    def share(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """What this step gives itself and later steps, computed just before its update."""

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        """The state with this step's part drawn from its conditional."""

    def after(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """What this step's update changes for later steps (e.g. an equation's row weights)."""

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """The step's recorded estimands, by lavaan name."""


class StepDefaults:
    """Defaults of :class:`Step` for steps that own no state, share nothing or record nothing."""

    start_key: int | None = None

    def noise(self, lay: Layout, data: Mapping[str, Any]) -> NoiseSizes:
        """No noise."""
        return NoiseSizes()

    def init(self, key: jax.Array | None, data: Mapping[str, Any], lay: Layout) -> State:
        """No state of its own."""
        return {}

    def begin(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """Nothing to share."""
        return ctx

    def share(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """Nothing to share."""
        return ctx

    def after(self, state: State, data: Mapping[str, Any], ctx: Context) -> Context:
        """Nothing changes for later steps."""
        return ctx

    def collect(self, state: State, lay: Layout) -> dict[str, jax.Array]:
        """No estimands."""
        return {}
