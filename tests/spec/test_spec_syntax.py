"""The model syntax: grammar, errors with line and column, the IR it builds, population values."""

import jax
import numpy as np
import pytest

from simstudy.errors import InputError
from simstudy.spec import dgm
from simstudy.spec.grammar import parse
from simstudy.spec.ir import LATENT, RANDOM, from_syntax
from simstudy.spec.population import population

GLMM = "y ~ 1 + x + (1 + x | g)"


def test_statements_of_every_operator():
    text = """
    f =~ y1 + l2*y2 + 1*y3   # measurement
    y ~ 1 + b1*x + z + x:z; y ~~ v*y
    ind := b1 * l2
    """
    kinds = [s.op for s in parse(text)]
    assert kinds == ["=~", "~", "~~", ":="]


@pytest.mark.parametrize(
    ("text", "where"),
    [("y ~ 1 + x +", "line 1, column 12"), ("y ~ x\nz =~ (", "line 2, column 6")],
)
def test_syntax_errors_name_line_column_and_what_was_expected(text, where):
    with pytest.raises(InputError) as err:
        parse(text)
    assert where in str(err.value) and "one of" in str(err.value)


def test_glmm_ir_names_random_effect_parameters_by_group_and_term():
    spec = from_syntax(GLMM, {"x": {"given": ["y"]}})
    assert spec.groups == ("g",)
    assert [b.name for b in spec.blocks] == ["y|g"]
    assert spec.estimands() == ("y~1", "y~x", "y~~y", "1|g~~1|g", "x|g~~x|g", "1|g~~x|g")
    # the incomplete predictor gets its own (nuisance) model: x ~ 1
    assert [e.target for e in spec.equations] == ["y", "x"]
    assert all(c.parameter.nuisance for c in spec.equations[1].coefficients)
    assert any(v.kind == RANDOM for v in spec.variables)


def test_measurement_model_identification_is_lavaans():
    spec = from_syntax("f =~ a + b + c\ny ~ f")
    assert spec.variable("f").kind == LATENT
    loadings = [
        c.parameter
        for e in spec.equations
        if e.target == "a"
        for c in e.coefficients
        if c.factors == ("f",)
    ]
    assert loadings[0].fixed == 1.0  # the first loading is fixed at 1
    assert "f=~b" in spec.estimands() and "f=~a" not in spec.estimands()


def test_cycles_and_unknown_groups_are_errors():
    with pytest.raises(InputError, match="cycle"):
        from_syntax("y ~ x\nx ~ y")
    with pytest.raises(InputError):
        from_syntax("y ~ x + (1 | g) + (1 | h)")  # one grouping factor only


def test_population_values_by_label_name_or_expression():
    spec = from_syntax("y ~ b1*x + z\nx ~~ r*z")
    values = population(spec, {"y~1": 0.0, "b1": 0.5, "y~z": "2 * b1", "y~~y": 1, "r": 0.3})
    assert values["y~x"] == 0.5 and values["y~z"] == 1.0 and values["x~~z"] == 0.3
    with pytest.raises(InputError, match=r"model.params.y~~y"):
        population(spec, {"y~1": 0.0, "b1": 0.5, "y~z": 1.0})
    with pytest.raises(InputError, match=r"model.params.nope"):
        population(spec, {"y~1": 0.0, "b1": 0.5, "y~z": 1.0, "y~~y": 1.0, "nope": 2})


HS_CFA = """\
visual =~ x1 + x2 + x3
textual =~ x4 + x5 + x6
speed =~ x7 + x8 + x9
"""


def test_covariances_are_named_in_declaration_order_as_lavaan_does():
    spec = from_syntax(HS_CFA)
    covariances = [p.name for b in spec.blocks for p in b.covariances]
    assert covariances == ["visual~~textual", "visual~~speed", "textual~~speed"]
    assert spec.estimands()[-3:] == tuple(covariances)
    # lme4's order of a random-effects part, intercept first, whatever the names sort to
    spec = from_syntax("y ~ 1 + w + (1 + w | g)")
    assert [p.name for p in spec.blocks[0].covariances] == ["1|g~~w|g"]
    spec = from_syntax("y ~ 1 + b + a + (b + a | g)")
    covariances = [p.name for p in spec.blocks[0].covariances]
    assert covariances == ["1|g~~b|g", "1|g~~a|g", "b|g~~a|g"]
    # a covariance written the other way round too (lavaan's table turns it round as well):
    # factors in the order of their =~, other variables in the order of first mention
    spec = from_syntax(HS_CFA + "speed ~~ r*visual")
    covariances = [p.name for p in spec.blocks[0].covariances]
    assert covariances == ["visual~~textual", "visual~~speed", "textual~~speed"]
    assert spec.labels() == {"r": "visual~~speed"}
    assert from_syntax("y ~ x + z\nz ~~ x").exogenous_moments[-1].name == "x~~z"
    spec = from_syntax("y ~ g\nf =~ a + b\ng =~ c + d\ng ~~ f")
    assert [p.name for p in spec.blocks[0].covariances] == ["f~~g"]


def test_a_population_covariance_in_the_other_order_names_the_same_parameter():
    spec = from_syntax("y ~ 1 + b + a + (0 + b + a | g)")
    given = {"y~1": 0, "y~b": 1, "y~a": 1, "y~~y": 1, "b|g~~b|g": 1, "a|g~~a|g": 2}
    assert population(spec, {**given, "a|g~~b|g": 0.5})["b|g~~a|g"] == 0.5
    assert population(spec, {**given, "b|g~~a|g": 0.5})["b|g~~a|g"] == 0.5
    with pytest.raises(InputError, match=r"model.params.a\|g~~b\|g.*also given as b\|g~~a\|g"):
        population(spec, {**given, "b|g~~a|g": 0.5, "a|g~~b|g": 0.5})
    # an exogenous covariance reaches the simulator under either order
    spec = from_syntax("y ~ z + x\nx ~~ z")
    setting = {"y~1": 0, "y~x": 1, "y~z": 1, "y~~y": 1, "x~~z": 0.6, "N": 4000}
    assert population(spec, {k: v for k, v in setting.items() if k != "N"})["z~~x"] == 0.6
    data = dgm.simulate(spec, jax.random.key(0), setting)
    assert np.corrcoef(data["x"], data["z"])[0, 1] == pytest.approx(0.6, abs=0.05)
