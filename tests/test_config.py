"""Every bad config exits 2 with a message naming the field, before any work starts."""

import subprocess
import sys
from pathlib import Path

import pytest

from simstudy.cli import load_plan
from simstudy.config import plan_from_dict
from simstudy.models import model_infos

BAD = [
    # (overrides, text the message must contain)
    (["model=nonexistent"], "model = 'nonexistent'"),
    (["study.estimators=[bayes_fiml,magic]"], "study.estimators[1] = 'magic'"),
    # a variance computed from the slopes, negative: refused, not simulated as NaN
    (["model=latent_interaction", "model.params.b1=2"], "model.params.eta_y~~eta_y = -3.4936"),
    (["+study.factors.K=[1,2]"], "study.factors.K = [1, 2]"),
    (["study.factors.N=[0]"], "study.factors.N[0] = 0"),
    (["study.factors.N=[-50,100]"], "study.factors.N[0] = -50"),
    (["study.factors.N=[100,abc]"], "study.factors.N[1] = 'abc'"),
    (["study.factors.N=[100.5]"], "study.factors.N[0] = 100.5"),
    (["study.reps=0"], "study.reps = 0"),
    (["study.reps=-3"], "study.reps = -3"),
    (["study.factors.missing_rate=[1.0]"], "study.factors.missing_rate[0] = 1.0"),
    (["study.factors.missing_rate=[-0.1]"], "study.factors.missing_rate[0] = -0.1"),
    (["study.factors.mechanism=[MNAR]"], "study.factors.mechanism[0] = 'MNAR'"),
    (["executor=slurmish"], "executor = 'slurmish'"),
    (["executor.name=slurmish"], "executor.name = 'slurmish'"),
    (["executor.batch_size=0"], "executor.batch_size = 0"),
    (["executor.pin_cores=maybe"], "executor.pin_cores = 'maybe'"),
    (["study.level=1.5"], "study.level = 1.5"),
    (["study.point_estimate=mode"], "study.point_estimate = 'mode'"),
    (["+study.rep=5"], "study.rep = 5"),
    (["sampler.chains=0"], "sampler.chains = 0"),
    (["study.exclude=[{mechanism:MAR},{mechanism:MCAR}]"], "study.exclude"),
    (["study.name=../escape"], "study.name = '../escape'"),
    (["study.reps"], "override = 'study.reps'"),
    (["study=latent_interaction", "sampler=nuts"], "sampler.name = 'nuts'"),
    (["aggregate.reference=magic"], "aggregate.reference = 'magic'"),
    (["aggregate.policy=strict"], "aggregate.policy = 'strict'"),
    (["+study.type=bootstrap"], "study.type = 'bootstrap'"),
    (
        ["study=sbc", "model=latent_interaction", "study.estimators=[fs_imputation]"],
        "study.estimators[0] = 'fs_imputation'",
    ),
    (["study=latent_interaction", "model.priors.var_shape=-2"], "model.priors.var_shape = -2"),
    (["study=latent_interaction", "model.priors.var_scale=-0.5"], "model.priors.var_scale = -0.5"),
    # InverseGamma(0, 0) = 1/v is not integrable at zero: the posterior may not be proper
    (
        ["study=latent_interaction", "model.priors.latent_var_shape=0"],
        "model.priors.latent_var_shape = 0.0",
    ),
    # SBC draws from the prior: the default flat latent variance prior is improper
    (["study=sbc", "model=latent_interaction"], "model.priors.latent_var_shape = -1.0"),
]


@pytest.mark.parametrize(("overrides", "expected"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_exits_2_naming_field(run_cli, tmp_path, overrides, expected):
    results = tmp_path / "results"
    (results / "missing_x").mkdir(parents=True)
    sentinel = results / "missing_x" / "keep.txt"
    sentinel.write_text("existing results")
    rc, output = run_cli(*overrides, results=results)
    assert rc == 2
    assert expected in output
    assert "Traceback" not in output
    assert "allowed" in output
    # nothing was started or touched
    assert sorted(p.name for p in (results / "missing_x").iterdir()) == ["keep.txt"]
    assert sentinel.read_text() == "existing results"


def test_messages_say_what_is_allowed(run_cli):
    _, out = run_cli("study.factors.missing_rate=[1.0]")
    assert "a number in [0, 1)" in out
    _, out = run_cli("executor=slurmish")
    assert "local" in out and "synchronous" in out
    _, out = run_cli("study.estimators=[magic]")
    assert "bayes_fiml, bayes_fiml_marginal, bayes_cc, ols_cc, bayes" in out


def test_console_script_exit_code_2(tmp_path):
    exe = Path(sys.executable).with_name("simstudy")
    proc = subprocess.run(
        [str(exe), "run", "study.reps=0", f"results_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "study.reps = 0" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_default_config_validates_and_round_trips():
    plan = load_plan([])
    assert plan.name == "missing_x"
    assert plan.estimators == ("bayes_fiml", "bayes_fiml_marginal", "bayes_cc", "ols_cc")
    assert plan.sampler.name == "chees"
    assert plan.factors["mechanism"] == ("MCAR", "MAR")
    assert plan_from_dict(plan.to_config(), model_infos()) == plan


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ([], "spec"),  # regression_missing, in the syntax
        (["study=glmm"], "spec"),
        (["study=latent_interaction"], "spec"),
        (["model=cfa", "study.estimators=[bayes]"], "spec"),
    ],
)
def test_a_models_kind_is_decided_where_its_config_is_validated(overrides, kind):
    plan = load_plan(overrides)
    assert plan.model.kind == kind
    # derived from the config: neither the manifest's config nor the numbers' hash holds it
    assert "kind" not in plan.to_config()["model"]
    assert "kind" not in plan.numbers_config()["model"]
    assert plan_from_dict(plan.to_config(), model_infos()) == plan


@pytest.mark.parametrize(
    "overrides",
    [
        # a proper latent variance prior
        [
            "study=latent_interaction",
            "+model.estimators.bayes_hmc={kind: hmc}",
            "study.estimators=[bayes_hmc]",
            "model.priors.latent_var_shape=2",
            "model.priors.latent_var_scale=0.5",
        ],
        # the flat one, for gibbs estimators only
        ["study=latent_interaction", "+model.estimators.bayes_hmc={kind: hmc}"],
        # no latent variance: the latent class's prior is never used
        [
            "model.prior_families={residual: inverse_gamma, covariance: inverse_gamma}",
            "+model.priors.latent_var_shape=-1",
            "+model.priors.latent_var_scale=0",
        ],
    ],
    ids=["proper", "gibbs_only", "no_latents"],
)
def test_hmc_and_latent_variance_priors_that_go_together(overrides):
    assert load_plan(overrides).estimators


def test_point_estimate_is_part_of_what_the_numbers_depend_on():
    default, median = load_plan([]), load_plan(["study.point_estimate=median"])
    assert default.point_estimate == "mean" and "point_estimate" not in default.numbers_config()
    assert median.numbers_config()["point_estimate"] == "median"  # a change is refused on resume
    assert median.to_config()["study"]["point_estimate"] == "median"


def test_smoke_experiment_is_smaller():
    smoke = load_plan(["+experiment=smoke"])
    full = load_plan([])
    assert smoke.name != full.name
    assert smoke.reps < full.reps
    assert smoke.sampler.draws < full.sampler.draws


def test_factor_may_vary_a_model_parameter():
    plan = load_plan(["+study.factors.b1=[0.0,0.5]"])
    assert plan.factors["b1"] == (0.0, 0.5)
    assert plan.factor_kinds["b1"] == "float"


@pytest.mark.parametrize(
    "study",
    sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "study").glob("*.yaml")),
)
def test_every_shipped_study_config_validates(study):
    extra = ["model=cfa"] if study == "sbc" else []
    plan = load_plan([f"study={study}", *extra])
    assert plan.reps > 0 and plan.name
