"""The model syntax: grammar, errors with line and column, the IR it builds, population values."""

import pytest

from simstudy.errors import InputError
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
