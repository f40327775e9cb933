"""Slow tier: simulation-based calibration of every model's Bayesian estimators.

Ranks say little about calibration where the chains have not converged, so each study also
needs at least ``MIN_CONVERGED`` of its fits at R-hat <= 1.01 and bulk ESS >= 400 on every
estimand (``sbc_converged``, as ``tables/sbc.md`` prints it); the sampler settings below are
chosen per model to reach it. Where they do not (yet) at an affordable cost, the case is an
expected failure naming the share measured: the criterion stays, the shortfall is on record.
"""

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

# Per-parameter uniformity tests at this level keep the family-wise false alarm rate near 1%
# over the ~30 parameters checked here.
ALPHA = 0.0005
#: Share of fits that must converge on every estimand.
MIN_CONVERGED = 0.9


class TooFewConverged(AssertionError):
    """Fewer than ``MIN_CONVERGED`` of a study's fits converged on every estimand."""


#: The default model's NumPyro estimators (its Gibbs ``bayes`` runs on another sampler).
HMC_ESTIMATORS = "study.estimators=[bayes_fiml,bayes_fiml_marginal,bayes_cc]"


def _short(reason: str):
    """An expected shortfall of the convergence share (ranks must still be uniform)."""
    return pytest.mark.xfail(raises=TooFewConverged, strict=True, reason=reason)


@pytest.mark.parametrize(
    ("model", "reps", "extra"),
    [
        # At NUTS's default 2 x 500 draws 86%, 88% and 92% of the first 160 fits of bayes_cc,
        # bayes_fiml and bayes_fiml_marginal converged (2026-12-07), short on R-hat between
        # 1.01 and 1.05 with ESS >= 700 (fiml) and on ESS 150-400 (cc): twice the draws.
        # (measured on the hand-written family, since retired: the same estimators and priors
        # on the spec model of conf/model/regression_missing.yaml)
        ("regression_missing", 200, [HMC_ESTIMATORS, "sampler.draws=1000"]),
        ("regression_missing", 200, [HMC_ESTIMATORS, "sampler=chees"]),  # the default study's
        ("regression_missing", 200, ["study.estimators=[bayes]"]),
        # Latent variances under their own proper prior (the default is flat), loadings
        # N(1, 0.5^2) (their own class): N(0, 1) loadings drew near-zero ones, factors
        # measured by their marker alone (5% of 20 fits converged at these settings so).
        pytest.param(
            "latent_interaction",
            200,
            [
                "study.factors.N=[500]",
                "sampler.draws=4000",
                "model.priors.latent_var_shape=3",
                "model.priors.latent_var_scale=2",
                "model.priors.var_shape=3",
                "model.priors.var_scale=1",
                "+model.priors.loading_mean=1",
                "+model.priors.loading_sd=0.5",
            ],
            marks=_short(
                "27% of 200 fits converged, ranks uniform (3.3 min on 2 cores, 2026-12-07): "
                "small residual variances (ESS 130-400) and, with large interactions, the x "
                "intercepts with eta_y~eta_x (ESS ~40)"
            ),
        ),
        pytest.param(
            "cfa",
            200,
            ["study.factors.N=[200]", "sampler.draws=2000"],
            marks=_short(
                "0 of 20 fits converged (median min ESS 71, min 16, max R-hat 1.36; 3.5 s "
                "a fit on 2 cores, 2026-12-07): 90% needs some 20x the draws"
            ),
        ),
        # The compiled engine: GLMM with correlated random intercept and slope, x MAR. Draws
        # 2000 -> 8000 took 11/20 -> 17/20 fits converged; the rest are chains stuck apart
        # in y~~y (ESS 3, R-hat 1.83), which more draws do not mend. With the shear moves
        # 404 of 500 (81%, 2026-12-07): in the stuck chains y~~y is 3 to 700 times its
        # truth, the missing x values drawn near their own prior (x's variance drawn in the
        # hundreds) and y's residual variance absorbing their misfit.
        pytest.param(
            "glmm",
            500,
            [
                "study.estimators=[bayes]",
                "study.factors={J: [20], cluster_size: [8], missing_rate: [0.2], mechanism: [MAR]}",
                "sampler.draws=8000",
            ],
            marks=_short(
                "81% of 500 fits converged at 8000 draws (~1 s a fit on 2 cores, 2026-12-07)"
            ),
        ),
        pytest.param(
            "cfa_ordinal",
            200,
            ["study.factors.N=[300]", "sampler.draws=2000"],
            marks=_short("issue 28: 0-1% of fits converged at these settings"),
        ),
        pytest.param(
            "cfa_ordinal",
            200,
            ["study.factors.N=[300]", "sampler.draws=2000", "model.structure.link=logit"],
            marks=_short("issue 28: 0-1% of fits converged (median min ESS 11)"),
        ),
    ],
)
def test_sbc_ranks_are_uniform(run_cli, tmp_path, model, reps, extra):
    rc, out = run_cli(
        "study=sbc",
        f"model={model}",
        f"study.reps={reps}",
        "model.priors.coef_sd=1",
        "executor.dashboard=false",
        *extra,
    )
    assert rc == 0, out
    summary = pd.read_parquet(tmp_path / "results" / "sbc" / "summary.parquet")
    p = summary[summary["measure"] == "sbc_p_value"].set_index(["estimator", "parameter"])["value"]
    assert len(p) > 0
    assert (p > ALPHA).all(), p[p <= ALPHA]
    failed = summary[summary["measure"] == "failure_rate"]["value"]
    assert (failed < 0.05).all()
    share = summary[summary["measure"] == "sbc_converged"].groupby("estimator")["value"].first()
    print(f"{model} {' '.join(extra)}: share of fits converged {share.round(3).to_dict()}")
    if (share < MIN_CONVERGED).any():
        raise TooFewConverged(f"converged on every estimand: {share.to_dict()}")
