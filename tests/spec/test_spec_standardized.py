"""lavaan's std.all as a spec model's estimands: names, values, population, refusals."""

import math

import numpy as np
import pytest

from simstudy.cli import main
from simstudy.errors import InputError
from simstudy.spec.ir import from_syntax
from simstudy.spec.population import population
from simstudy.spec.standardized import std_all

SYNTAX = "f =~ u1 + u2 + y3\ng =~ y4 + y5\n"


def _spec(link="probit"):
    return from_syntax(SYNTAX, ordered={"u1": 3, "u2": 2}, link=link, report="std.all")


def test_std_all_reports_every_loading_correlations_and_scaled_thresholds():
    spec = _spec()
    names = spec.estimands()
    assert "f=~u1" in names and "g=~y4" in names  # the markers' too
    assert "f~~g" in names and "f~~f" not in names  # correlations, no variances
    assert {"y3~~y3", "y3~1", "u1|t1", "u1|t2", "u2|t1"} <= set(names)
    assert "u1~1" not in names and "u1~~u1" not in names  # fixed in the theta parameterisation


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_std_all_of_a_population_is_lavaans_formula(link):
    spec = _spec(link)
    resvar = 1.0 if link == "probit" else math.pi**2 / 3
    values = {
        "f=~u2": 2.0, "f=~y3": 0.5, "g=~y5": 1.5, "y3~1": 1.0, "y4~1": 0.0, "y5~1": 0.0,
        "y3~~y3": 0.75, "y4~~y4": 1.0, "y5~~y5": 1.0, "f~~f": 4.0, "g~~g": 1.0, "f~~g": 0.6,
        "u1|t1": -1.0, "u1|t2": 1.0, "u2|t1": 0.0,
    }  # fmt: skip
    out = std_all(spec, population(spec, values))
    sd_u1 = math.sqrt(4.0 + resvar)  # marker loading 1, factor variance 4
    assert out["f=~u1"] == pytest.approx(2.0 / sd_u1)
    assert out["u1|t2"] == pytest.approx(1.0 / sd_u1)
    sd_y3 = math.sqrt(0.25 * 4.0 + 0.75)
    assert out["f=~y3"] == pytest.approx(0.5 * 2.0 / sd_y3)
    assert out["y3~~y3"] == pytest.approx(0.75 / sd_y3**2)
    assert out["y3~1"] == pytest.approx(1.0 / sd_y3)
    assert out["f~~g"] == pytest.approx(0.6 / 2.0)
    assert set(out) == set(spec.estimands())


def test_std_all_maps_draws_elementwise():
    spec = from_syntax("f =~ y1 + y2\n", report="std.all")
    draws = {"f=~y2": np.array([1.0, 2.0]), "f~~f": np.array([1.0, 4.0])}
    draws |= {"y1~1": np.zeros(2), "y2~1": np.zeros(2)}
    draws |= {"y1~~y1": np.array([1.0, 1.0]), "y2~~y2": np.array([1.0, 2.0])}
    out = std_all(spec, draws)
    np.testing.assert_allclose(out["f=~y1"], [1 / math.sqrt(2), 2 / math.sqrt(5)])
    np.testing.assert_allclose(out["f=~y2"], [1 / math.sqrt(2), 4 / math.sqrt(18)])


@pytest.mark.parametrize(
    ("syntax", "said"),
    [
        ("f =~ y1 + y2 + y3\ny4 ~ f\n", "the regression y4~f"),
        ("f =~ y1 + y2 + y3\ng =~ y4 + y5 + y6\ng ~ f\n", "a regression of the factor g"),
        ("y ~ x\n", "no latent variable"),
    ],
)
def test_std_all_refuses_what_it_does_not_cover(syntax, said):
    with pytest.raises(InputError) as err:
        from_syntax(syntax, report="std.all")
    assert err.value.field == "model.report"
    assert said in str(err.value)


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("model.report=std", "model.report = 'std'"),
        ("+model.estimators.fs={kind: sum_score_ols}", "model.estimators.fs.kind"),
    ],
)
def test_a_bad_report_exits_2_naming_the_field(override, said, capsys):
    rc = main(["show", "model=cfa_ordinal", override])
    assert rc == 2
    err = capsys.readouterr().err
    assert said in err, err
    assert "Traceback" not in err
