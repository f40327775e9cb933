"""A spec model's ``estimators:`` mapping: names, kinds and options (simstudy.spec.estimators)."""

import shutil

import pytest
from conftest import records_of

from simstudy.cli import PACKAGE_CONF, compose_raw, main
from simstudy.config import plan_from_dict
from simstudy.models import family_of, model_infos

MODEL = """\
name: two_gibbs
syntax: |
  y ~ b0*1 + b1*x + b2*z
  y ~~ s2*y
  x ~~ rho*z
design:
  missing:
    x: {given: [y], strength: 0.8}
params: {b0: 1.0, b1: 0.5, b2: 0.3, s2: 1.0, rho: 0.4}
"""

SMALL = [
    "study=missing_x",
    "model=two_gibbs",
    "study.reps=2",
    "study.factors.N=[40]",
    "study.factors.mechanism=[MAR]",
    "sampler.warmup=30",
    "sampler.draws=30",
    "executor.dashboard=false",
]


@pytest.fixture
def conf(tmp_path, monkeypatch):
    """A copy of the package's configs where ``model=two_gibbs`` can be written."""
    conf = tmp_path / "conf"
    shutil.copytree(PACKAGE_CONF, conf)
    monkeypatch.setenv("SIMSTUDY_CONFIG_DIR", str(conf))
    return conf


def write(conf, estimators: str) -> None:
    (conf / "model" / "two_gibbs.yaml").write_text(MODEL + estimators)


def test_two_named_gibbs_estimators_are_built_under_their_names(conf):
    write(conf, "estimators: {first: {kind: gibbs}, second: {kind: gibbs}}\n")
    both = [*SMALL, "study.estimators=[first,second]"]
    plan = plan_from_dict(compose_raw(both), model_infos())
    assert plan.model.structure["estimators"] == {  # options given their defaults
        "first": {"kind": "gibbs", "complete_cases": False},
        "second": {"kind": "gibbs", "complete_cases": False},
    }
    built = family_of(plan.model).estimators_for(plan.model.structure)
    assert [e.name for e in built.values()] == ["first", "second"]
    assert all(e.parameters == ("y~1", "y~x", "y~z", "y~~y") for e in built.values())


# slow tier: two Gibbs programs in a study; the estimators built under their names are checked
# by default (test_two_named_gibbs_estimators_are_built_under_their_names)
@pytest.mark.slow
def test_two_named_gibbs_estimators_run_and_report_under_their_names(conf, run_cli):
    write(conf, "estimators: {first: {kind: gibbs}, second: {kind: gibbs}}\n")
    both = [*SMALL, "study.estimators=[first,second]"]
    rc, out = run_cli(*both)
    assert rc == 0, out
    records = records_of(conf.parent / "results" / "missing_x")
    assert set(records["estimator"]) == {"first", "second"}
    assert set(records["parameter"]) == {"y~1", "y~x", "y~z", "y~~y"}


def test_without_estimators_a_spec_model_has_bayes_and_bayes_hmc(conf):
    write(conf, "")
    plan = plan_from_dict(compose_raw([*SMALL, "study.estimators=[bayes]"]), model_infos())
    assert "estimators" not in plan.model.structure  # the hash of such models is unchanged
    info = family_of(plan.model).info
    assert info.estimators == ("bayes", "bayes_hmc")
    assert info.samplers == {"bayes": "gibbs", "bayes_hmc": "nuts"}


@pytest.mark.parametrize(
    ("estimators", "field", "allowed"),
    [
        ("{first: {kind: magic}}", "model.estimators.first.kind", "one of gibbs, hmc"),
        ("{first: {kind: gibbs, speed: 2}}", "model.estimators.first.speed", "an option of gibbs"),
        ("{first: 3}", "model.estimators.first", "{kind: K, ...options}"),
        ("[gibbs]", "model.estimators", "a mapping from estimator names"),
    ],
)
def test_a_bad_estimator_exits_2_naming_it_before_any_work(
    conf, tmp_path, capsys, estimators, field, allowed
):
    write(conf, f"estimators: {estimators}\n")
    results = tmp_path / "results"
    rc = main(["run", f"results_dir={results}", *SMALL, "study.estimators=[first]"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert field in err
    assert allowed in err
    assert not results.exists()


def test_a_study_naming_an_estimator_the_mapping_lacks_exits_2(conf, capsys):
    write(conf, "estimators: {first: {kind: gibbs}}\n")
    rc = main(["show", *SMALL, "study.estimators=[bayes]"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bayes" in err and "first" in err
