"""Draws of the compiled Gibbs sweep on fixed keys, saved or checked bit for bit.

A guard for changes to the sweep's code that must not change its numbers (a restructuring):
run ``--save`` before the change and ``--check`` after it. Each model below is fitted to one
simulated data set with fixed keys, by the study path (``posterior_draws``: compiled, two
chains) and by a few op-by-op sweeps from ``init`` whose whole states are kept; ``--check``
fails unless every array is identical.

    .venv/bin/python benchmarks/sweep_draws.py --save /tmp/sweep_draws.npz
    .venv/bin/python benchmarks/sweep_draws.py --check /tmp/sweep_draws.npz
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from simstudy.cli import compose_raw
from simstudy.config import SamplerSettings, plan_from_dict
from simstudy.design import expand_grid
from simstudy.engine.replicate import compiled_simulate, key_from_seed, posterior_draws, setting_of
from simstudy.models import family_of, model_infos
from simstudy.spec import sweep
from simstudy.spec.estimators import _priors_of
from simstudy.spec.info import spec_of

SAMPLER = SamplerSettings(name="gibbs", chains=2, warmup=40, draws=60)
#: Sweeps run op by op from ``init``, whose whole states are compared.
STATE_SWEEPS = 3

HS_CFA = {
    "syntax": "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n",
    "params": {
        **{f"{f}=~x{i}": 0.8 for f, i in (("visual", 2), ("visual", 3), ("textual", 5))},
        **{f"{f}=~x{i}": 0.8 for f, i in (("textual", 6), ("speed", 8), ("speed", 9))},
        **{f"x{i}~1": 0 for i in range(1, 10)},
        **{f"x{i}~~x{i}": 0.5 for i in range(1, 10)},
        **{f"{f}~~{f}": 1 for f in ("visual", "textual", "speed")},
        "visual~~textual": 0.3,
        "visual~~speed": 0.3,
        "textual~~speed": 0.3,
    },
}
MEDIATION = {
    "syntax": "m ~ a*x\ny ~ b*m + cp*x\nind := a*b\n",
    "params": {"a": 0.3, "b": 0.3, "cp": 0.1, "m~1": 0, "y~1": 0, "m~~m": 1, "y~~y": 1},
}
INTERCEPTS = {
    "syntax": "y ~ 1 + x + (1 | g)\n",
    "params": {"y~1": 0, "y~x": 0.5, "y~~y": 1, "1|g~~1|g": 0.3},
}
HALF_NORMAL = {"residual": "half_normal", "covariance": "half_normal"}
INVERSE_GAMMA = {"residual": "inverse_gamma", "covariance": "inverse_gamma"}

#: name -> (model override, written model or None, prior families or None, design factors)
MODELS: dict[str, tuple[str, dict | None, dict | None, dict]] = {
    "regression_missing": ("model=regression_missing", None, None, {"N": 60}),
    "glmm": ("model=glmm", None, None, {"J": 10, "cluster_size": 6}),
    "glmm_inverse_gamma": ("model=glmm", None, INVERSE_GAMMA, {"J": 10, "cluster_size": 6}),
    "latent_interaction": ("model=latent_interaction", None, None, {"N": 60}),
    "latent_interaction_w": ("model=latent_interaction_w", None, None, {"N": 60}),
    "cfa_syntax": ("model=spec", HS_CFA, None, {"N": 60}),
    "cfa_syntax_half_normal": ("model=spec", HS_CFA, HALF_NORMAL, {"N": 60}),
    "mediation": ("model=spec", MEDIATION, None, {"N": 40}),
    "random_intercepts": ("model=spec", INTERCEPTS, INVERSE_GAMMA, {"J": 8, "cluster_size": 5}),
}


def _plan(override: str, written: dict | None, families: dict | None, factors: dict) -> Any:
    raw = compose_raw(["study=missing_x", override, "study.reps=1", "study.estimators=[bayes]"])
    if written is not None:
        raw["model"].update(syntax=written["syntax"], params=written["params"])
    if families is not None:
        raw["model"]["prior_families"] = families
    levels = {k: [v] for k, v in factors.items()}
    if (raw["model"].get("design") or {}).get("missing"):
        given = [m.get("given") for m in raw["model"]["design"]["missing"].values()]
        levels |= {"missing_rate": [0.2], "mechanism": ["MAR" if any(given) else "MCAR"]}
    raw["study"]["factors"] = levels
    return plan_from_dict(raw, model_infos())


def model_draws(name: str) -> dict[str, np.ndarray]:
    """Every array one model gives on fixed keys: chains' draws and a few whole states."""
    plan = _plan(*MODELS[name])
    family = family_of(plan.model)
    setting = setting_of(plan, expand_grid(plan.factors)[0])
    data = compiled_simulate(family, setting)(jax.random.key(11))
    estimator = family.estimators_for(plan.model.structure)["bayes"]
    draws, _ = posterior_draws(estimator, data, key_from_seed(5), SAMPLER, plan.model.priors)
    out = {f"draws/{k}": np.asarray(v) for k, v in draws.draws.items()}

    spec = spec_of(plan.model.structure)
    lay = sweep.layout(spec)
    priors = _priors_of(plan.model.structure["prior_families"], plan.model.priors)
    prepared = sweep.prepare(data, lay)
    state = sweep.init(jax.random.PRNGKey(1), prepared, lay, priors)
    step = jax.jit(lambda key, s: sweep.sweep(key, s, prepared, lay, priors))
    for k in range(STATE_SWEEPS):
        state = step(jax.random.PRNGKey(100 + k), state)
    out |= {f"state/{path}": np.asarray(v) for path, v in _leaves(state)}
    return out


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out += _leaves(v, f"{prefix}{k}/")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", help="write the arrays to this .npz")
    what.add_argument("--check", help="compare with the arrays of this .npz")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    arrays = {}
    for name in args.models:
        arrays |= {f"{name}/{k}": v for k, v in model_draws(name).items()}
        print(f"{name}: {sum(k.startswith(name + '/') for k in arrays)} arrays", flush=True)
    if args.save:
        np.savez(args.save, **arrays)
        print(f"saved {len(arrays)} arrays to {args.save}")
        return 0
    saved = dict(np.load(args.check))
    saved = {k: v for k, v in saved.items() if k.split("/")[0] in args.models}
    differ = sorted(k for k in saved.keys() | arrays.keys() if k not in saved or k not in arrays)
    differ += sorted(
        k for k in saved.keys() & arrays.keys() if not np.array_equal(saved[k], arrays[k])
    )
    for k in differ:
        print(f"DIFFERS: {k}")
    print(f"{len(arrays) - len(differ)} of {len(arrays)} arrays identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
