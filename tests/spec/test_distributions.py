"""Non-normal residuals and latent variables in the simulator (model.design.distributions)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

import simstudy
from simstudy.cli import main
from simstudy.spec import distributions

FAMILIES = [
    {"family": "skew_normal", "alpha": 5.0},
    {"family": "t", "df": 5.0},
    {"family": "chi2", "df": 2.0},
    {"family": "normal"},
]


@pytest.mark.parametrize("shape", FAMILIES, ids=lambda s: s["family"])
def test_each_family_is_standardized_with_its_skewness(shape):
    x = np.asarray(distributions.draw(jax.random.key(1), shape, (400_000,)), float)
    assert abs(x.mean()) < 0.01 and x.var() == pytest.approx(1.0, abs=0.03)
    assert stats.skew(x) == pytest.approx(distributions.skewness(shape), abs=0.08)


SKEWED = ["+model.design.distributions={y: {family: skew_normal, alpha: 5}}"]


def test_a_skewed_residual_keeps_the_models_parameters():
    """y's residual is skew-normal (skewness 0.85) with variance s2; the slopes are as set."""
    study = simstudy.Study.from_config(
        [*SKEWED, "study.factors.N=[20000]", "study.factors.mechanism=[MCAR]"]
    )
    data = study.simulate(0, 0)
    x, z, y = (data[c].to_numpy(float) for c in ("x", "z", "y"))
    keep = ~np.isnan(x)
    design = np.column_stack([np.ones(keep.sum()), x[keep], z[keep]])
    beta, *_ = np.linalg.lstsq(design, y[keep], rcond=None)
    resid = y[keep] - design @ beta
    np.testing.assert_allclose(beta, [1.0, 0.5, 0.3], atol=0.03)
    assert resid.var() == pytest.approx(1.0, abs=0.04)
    assert stats.skew(resid) == pytest.approx(0.85, abs=0.08)
    normal = simstudy.Study.from_config(["study.factors.N=[20000]"]).simulate(0, 0)
    assert abs(stats.skew(normal["z"] - 0)) < 0.1  # the others stay normal
    assert stats.skew(data["z"]) == pytest.approx(stats.skew(normal["z"]), abs=1e-6)


@pytest.mark.parametrize(
    ("given", "field", "allowed"),
    [
        ("{w: {family: t, df: 5}}", "distributions.w", "a variable of the model"),
        ("{y: {family: gamma}}", "distributions.y.family", "one of normal, skew_normal"),
        ("{y: {family: t, df: 2}}", "distributions.y.df", "a number above 2.0"),
        ("{y: {family: t}}", "distributions.y.df", "required by t"),
        ("{y: {family: t, df: 5, alpha: 1}}", "distributions.y.alpha", "a parameter of t"),
    ],
)
def test_a_bad_distribution_is_refused_naming_the_field(given, field, allowed, capsys):
    assert main(["show", f"+model.design.distributions={given}"]) == 2
    said = capsys.readouterr().err
    assert f"model.design.{field} = " in said and allowed in said
