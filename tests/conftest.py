"""Shared fixtures: run the real command line in-process, on a temporary results root."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

# The default tier (no -m given) runs short chains, so its time is XLA's compile, which backend
# optimisation level 0 cuts by about a third; a tier asked for by -m keeps the optimised
# programs a study gets. Set before JAX starts; xdist and Dask workers inherit it.
if "XLA_FLAGS" not in os.environ and not any(a.startswith("-m") for a in sys.argv[1:]):
    os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"

import pandas as pd
import pytest

from simstudy.cli import main
from simstudy.store import read_replications

#: A small, quick study for pipeline tests: closed-form and one MCMC estimator, tiny sampler
#: (NUTS: it compiles in half ChEES's time; the default study's ChEES runs in test_chees.py).
TINY = [
    "sampler=nuts",
    "study.name=tiny",
    "study.reps=6",
    "study.factors.N=[40]",
    "study.factors.missing_rate=[0.2]",
    "study.factors.mechanism=[MCAR,MAR]",
    "study.estimators=[ols_cc,bayes_cc]",
    "sampler.warmup=60",
    "sampler.draws=60",
    "executor.dashboard=false",
]

#: A study whose simulator raises: a design factor's level makes the latent interaction
#: model's slopes explain more than eta_y's variance (a negative residual variance; the same
#: value under model.params is refused before any work). Every fit is a failed row, exit 1.
UNSIMULABLE = [
    "model=latent_interaction",
    "study.estimators=[sum_score_ols]",
    "study.reps=2",
    "study.factors.N=[50]",
    "study.factors.missing_rate=[0.0]",
    "study.factors.mechanism=[MCAR]",
    "+study.factors.b1=[2]",
]


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run ``simstudy run`` in this process with ``results_dir`` under ``tmp_path``."""

    def run(*overrides: str, results: Path | None = None) -> tuple[int, str]:
        root = results or tmp_path / "results"
        rc = main(["run", f"results_dir={root}", *overrides])
        captured = capsys.readouterr()
        return rc, captured.out + captured.err

    return run


def regression_missing(**condition: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The default study's model (``conf/model/regression_missing.yaml``, a spec model).

    Returns its family, its estimators by name, and the setting (population values and
    structure) of the default condition (N 250, 30% of x missing at random given y) with
    ``condition``'s levels on top: what ``family.simulate`` and ``family.truth`` take.
    """
    from simstudy.cli import compose_raw
    from simstudy.config import plan_from_dict
    from simstudy.engine.replicate import setting_of
    from simstudy.models import family_of, model_infos

    plan = plan_from_dict(compose_raw(["study=missing_x"]), model_infos())
    family = family_of(plan.model)
    base = {"N": 250, "missing_rate": 0.3, "mechanism": "MAR"}
    setting = setting_of(plan, {**base, **condition})
    return family, family.estimators_for(plan.model.structure), setting


class LatentModel(NamedTuple):
    """A latent interaction spec config as a test calls it (:func:`latent_interaction`)."""

    plan: Any
    family: Any
    estimators: dict[str, Any]
    setting: dict[str, Any]
    priors: dict[str, Any]


def latent_interaction(model: str = "latent_interaction", **condition: Any) -> LatentModel:
    """A latent interaction spec config (``conf/model/<model>.yaml``) under its seeds' study.

    ``setting`` is what ``family.simulate`` and ``family.truth`` take: the population values
    and structure of the condition N 300, no missing data, MCAR, with ``condition``'s levels
    on top; ``priors`` the config's (flat on the latent variances).
    """
    from simstudy.cli import compose_raw
    from simstudy.config import plan_from_dict
    from simstudy.engine.replicate import setting_of
    from simstudy.models import family_of, model_infos

    raw = compose_raw(["study=latent_interaction", f"model={model}"])
    plan = plan_from_dict(raw, model_infos())
    family = family_of(plan.model)
    base = {"N": 300, "missing_rate": 0.0, "mechanism": "MCAR"}
    setting = setting_of(plan, {**base, **condition})
    estimators = family.estimators_for(plan.model.structure)
    return LatentModel(plan, family, estimators, setting, dict(plan.model.priors))


def ols(design: Any, target: Any) -> tuple[Any, Any]:
    """OLS by numpy: coefficients and their estimated covariance (residual dof n - p)."""
    import numpy as np

    design, target = np.asarray(design, float), np.asarray(target, float)
    beta = np.linalg.lstsq(design, target, rcond=None)[0]
    dof = design.shape[0] - design.shape[1]
    s2 = ((target - design @ beta) ** 2).sum() / dof
    return beta, s2 * np.linalg.inv(design.T @ design)


def records_of(study_dir: Path) -> pd.DataFrame:
    """Replication records of a study, sorted so that two runs compare row by row."""
    df = read_replications(study_dir)
    return df.sort_values(["condition_id", "rep", "estimator", "parameter"]).reset_index(drop=True)


def numbers(df: pd.DataFrame, columns: Sequence[str] = ("estimate", "se", "lower", "upper")):
    """The numeric results of records, for exact comparison."""
    return df[["condition_id", "rep", "seed", "estimator", "parameter", *columns]]


def primitives(jaxpr) -> set[str]:
    """Names of the primitives of a (closed) jaxpr, its sub-jaxprs' (loops, jit) included."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else [param]:
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    names |= primitives(sub)
    return names


#: JAX's monitoring event for each program XLA compiles.
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
#: JAX's monitoring event for each function traced to a jaxpr (also on a persistent-cache hit).
JAXPR_TRACE = "/jax/core/compile/jaxpr_trace_duration"


@contextmanager
def compile_events(*names: str) -> Iterator[list[str]]:
    """The JAX compile events (default: backend compiles) that happen inside the block."""
    from jax import monitoring

    wanted = names or (BACKEND_COMPILE,)
    events: list[str] = []

    def listener(event: str, duration: float, **kwargs: object) -> None:
        if event in wanted:
            events.append(event)

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        monitoring.unregister_event_duration_listener(listener)
