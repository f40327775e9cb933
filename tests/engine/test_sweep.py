"""The sweep as a list of typed steps: every spec's steps, their noise, and one module per kind."""

import ast
import dataclasses
import functools
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from simstudy.cli import compose_raw
from simstudy.config import plan_from_dict
from simstudy.design import expand_grid
from simstudy.engine.replicate import setting_of
from simstudy.models import family_of, model_infos
from simstudy.spec import steps as steps_package
from simstudy.spec import sweep
from simstudy.spec.info import spec_of
from simstudy.spec.ir import from_syntax
from simstudy.spec.steps.base import Context, Noise, NoiseSizes, State, Step, StepDefaults

CONF = Path(__file__).parents[2] / "conf" / "model"
SHIPPED = sorted(
    p.stem for p in CONF.glob("*.yaml") if (yaml.safe_load(p.read_text()) or {}).get("syntax")
)
#: Specs written here for the kinds the shipped ones lack (a covariance block of three
#: level-1 factors; a single random intercept; equations only).
WRITTEN = {
    "cfa": "a =~ x1 + x2 + x3\nb =~ x4 + x5 + x6\nc =~ x7 + x8 + x9\n",
    "random_intercept": "y ~ 1 + x + (1 | g)\n",
    "mediation": "m ~ a*x\ny ~ b*m + cp*x\nind := a*b\n",
}


def _shipped(name: str) -> tuple[Any, dict]:
    """A shipped spec's layout and a small simulated data set, prepared for the sweep."""
    raw = compose_raw(["study=missing_x", f"model={name}", "study.estimators=[bayes]"])
    two_level = "|" in raw["model"]["syntax"]
    levels = {"J": [4], "cluster_size": [3]} if two_level else {"N": [6]}
    if (raw["model"].get("design") or {}).get("missing"):
        levels |= {"missing_rate": [0.2], "mechanism": ["MCAR"]}
    raw["study"]["factors"] = levels
    plan = plan_from_dict(raw, model_infos())
    setting = setting_of(plan, expand_grid(plan.factors)[0])
    data = family_of(plan.model).simulate(jax.random.key(0), setting)
    lay = sweep.layout(spec_of(plan.model.structure))
    return lay, sweep.prepare(data, lay)


def _written(syntax: str, n: int = 6) -> tuple[Any, dict]:
    """A written spec's layout and a data set of ``n`` rows of normals (2 clusters)."""
    spec = from_syntax(syntax)
    lay = sweep.layout(spec)
    rng = np.random.default_rng(0)
    data = {"row_real": jnp.ones(n, bool)}
    for v in spec.variables:
        if v.kind == "observed":
            data[v.name] = jnp.asarray(rng.normal(size=n))
            data[f"observed:{v.name}"] = jnp.ones(n, bool)
    if "g" in syntax:
        data["g"], data["clusters:g"] = jnp.arange(n) % 2, jnp.ones(2, bool)
    return lay, sweep.prepare(data, lay)


@functools.cache
def _case(name: str) -> tuple[Any, dict]:
    written = name.removeprefix("written:")
    return _written(WRITTEN[written]) if written != name else _shipped(name)


CASES = [*SHIPPED, *(f"written:{n}" for n in WRITTEN)]


def _random_bits(jaxpr) -> list[tuple[int, ...]]:
    """Shapes of the random bits a (closed) jaxpr draws, its sub-jaxprs' included, in order."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "random_bits":
            out.append(tuple(eqn.outvars[0].aval.shape))
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else [param]:
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    out += _random_bits(sub)
    return out


@pytest.mark.parametrize("name", CASES)
def test_every_spec_builds_its_steps_and_their_noise_is_what_the_sweep_draws(name):
    lay, data = _case(name)
    assert lay.steps and all(isinstance(s, Step) for s in lay.steps)
    sizes = sweep.noise_sizes(lay, data)
    n_normal = sum(s.n_normal for s in sizes)
    n_uniform = sum(s.n_uniform for s in sizes)

    def noise(key):
        return [dataclasses.astuple(x) for x in sweep.draw_noise(key, lay, data)]

    # the sweep's noise is one normal call and one uniform call of the declared totals
    drawn = _random_bits(jax.make_jaxpr(noise)(jax.random.PRNGKey(0)))
    assert drawn == [(max(1, n_normal),), (n_uniform,)]
    # each step gets exactly what it declared, and no two steps share a draw
    shares = sweep.draw_noise(jax.random.PRNGKey(0), lay, data)
    normals, uniforms = [], []
    for size, share in zip(sizes, shares, strict=True):
        assert {k: v.shape for k, v in share.normal.items()} == {
            k: (n,) for k, n in size.normal.items()
        }
        assert {k: v.shape for k, v in share.uniform.items()} == {
            k: (n,) for k, n in size.uniform.items()
        }
        assert len(share.keys) == size.keys
        normals += [np.asarray(v) for v in share.normal.values()]
        uniforms += [np.asarray(v) for v in share.uniform.values()]
        if size.gamma:
            _, (z, u, boost) = share.gamma
            assert z.shape == u.shape == (4, size.gamma) and boost.shape == (size.gamma,)
            normals.append(np.asarray(z).ravel())
            uniforms += [np.asarray(u).ravel(), np.asarray(boost)]
        else:
            assert share.gamma is None
    for values, total in ((normals, n_normal), (uniforms, n_uniform)):
        values = np.concatenate([np.zeros(0), *values])
        assert values.size == total and np.unique(values).size == total
    # the sweep itself draws its normals and uniforms through that layout
    traced = jax.make_jaxpr(lambda k, s: sweep.sweep(k, s, data, lay, sweep.Priors()))
    # traced, not run: op by op, a large spec's start state costs seconds of dispatch
    state = jax.eval_shape(
        lambda k: sweep.init(k, data, lay, sweep.Priors()), jax.random.PRNGKey(1)
    )
    assert _random_bits(traced(jax.random.PRNGKey(0), state))[:2] == drawn


def _step_classes() -> list[type]:
    out = []
    for info in pkgutil.iter_modules(steps_package.__path__):
        module = importlib.import_module(f"{steps_package.__name__}.{info.name}")
        out += [
            c
            for c in vars(module).values()
            if inspect.isclass(c)
            and issubclass(c, StepDefaults)
            and c is not StepDefaults
            and c.__module__ == module.__name__
        ]
    return out


def test_a_step_kind_is_one_module_implementing_the_protocol():
    classes = _step_classes()
    assert len(classes) >= 8
    assert len({c.__module__ for c in classes}) == len(classes), "one kind per module"
    for c in classes:
        assert dataclasses.is_dataclass(c) and c.__dataclass_params__.frozen, c
        assert "update" in vars(c), f"{c.__name__} has no update of its own"
        for method in ("noise", "init", "begin", "share", "update", "collect"):
            assert callable(getattr(c, method)), (c, method)
    # every kind a shipped or written spec uses is one of them
    used = {type(s) for name in CASES for s in _case(name)[0].steps}
    assert used == set(classes)
    # sweep.py names no kind in its code (the layout's measurement facts aside), and its
    # loops call the protocol only
    names = {c.__name__ for c in classes}
    modules = {c.__module__ for c in classes}
    assert _identifiers(sweep) & names == {"Measurement"}
    assert _imported(sweep) & modules <= {f"{steps_package.__name__}.{m}" for m in LAYOUT_FACTS}
    for fn in (sweep.sweep, sweep.init, sweep.collect, sweep.draw_noise, sweep.noise_sizes):
        assert not _identifiers(fn) & names, fn.__name__


#: Kind modules sweep.py may import from: the layout's facts (the node groups, the
#: indicator equations), not their steps' updates.
LAYOUT_FACTS = ("nodes", "measurement")


def _identifiers(obj: Any) -> set[str]:
    """The names a module's or function's code uses (docstrings and comments aside)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            out |= {a.name for a in node.names}
    return out


def _imported(module: Any) -> set[str]:
    """The modules a module imports from."""
    tree = ast.parse(inspect.getsource(module))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add(node.module or "")
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


@dataclasses.dataclass(frozen=True)
class Probe(StepDefaults):
    """A step kind written outside the package: a parameter with a N(0, 1) conditional."""

    def noise(self, lay: Any, data: Mapping[str, Any]) -> NoiseSizes:
        return NoiseSizes(normal={"probe": 2}, uniform={"probe": 1})

    def init(self, key: Any, data: Mapping[str, Any], lay: Any) -> State:
        return {"coef": {"probe": jnp.zeros(2)}}

    def update(self, state: State, data: Mapping[str, Any], noise: Noise, ctx: Context) -> State:
        draw = noise.normal["probe"] * jnp.where(noise.uniform["probe"] < 2.0, 1.0, 0.0)
        return {**state, "coef": {**state["coef"], "probe": draw}}

    def collect(self, state: State, lay: Any) -> dict[str, jax.Array]:
        return {"probe": state["coef"]["probe"][0]}


def test_a_new_step_kind_joins_the_sweep_without_touching_it():
    lay, data = _written(WRITTEN["mediation"])
    lay = dataclasses.replace(lay, steps=(*lay.steps, Probe()))
    state = sweep.init(jax.random.PRNGKey(0), data, lay, sweep.Priors())
    assert float(sweep.collect(state, lay, from_syntax(WRITTEN["mediation"]))["probe"]) == 0.0
    spec = from_syntax(WRITTEN["mediation"])

    def step(state, key):
        state = sweep.sweep(key, state, data, lay, sweep.Priors())
        return state, sweep.collect(state, lay, spec)["probe"]

    _, draws = jax.lax.scan(step, state, jax.random.split(jax.random.PRNGKey(0), 300))
    assert abs(np.mean(draws)) < 0.25 and abs(np.std(draws) - 1) < 0.15
