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


#: Coefficients' prior unless a case sets its own: proper and moderately informative.
DEFAULT_COEF = "model.priors.coef_sd=1"

#: The default model's NumPyro estimators (its Gibbs ``bayes`` runs on another sampler).
HMC_ESTIMATORS = "study.estimators=[bayes_fiml,bayes_fiml_marginal,bayes_cc]"


#: The ordinal CFA's SBC settings, both links.
CFA_ORDINAL = [
    "study.estimators=[bayes]",
    "study.factors.N=[300]",
    "sampler.draws=6000",
    "model.priors.coef_sd=1",
    "+model.priors.latent_var_shape=10",
    "+model.priors.latent_var_scale=9",
    "+model.priors.loading_mean=1",
    "+model.priors.loading_sd=0.25",
]


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
        # Proper priors on the data's scale, each class its own (loadings N(1, 0.25^2); residual
        # variances IG(10, 5), mean 0.56; latent IG(10, 9), mean 1; other coefficients
        # N(0, 0.5^2)): 97% of 200 fits converged, 1.7 min on 2 cores (2026-12-07). Wider
        # priors draw populations the sweep mixes slowly on: N(0, 1) loadings near zero (a
        # factor measured by its marker alone, 0-5% converged), IG(3, 1) residual variances
        # near zero with N(1, 0.5^2) loadings (27%), N(0, 1) intercepts and interactions with
        # N(0, 0.25^2) loadings (80% of 30: x intercepts against eta_y~eta_x, whose location
        # the product term pins).
        (
            "latent_interaction",
            200,
            [
                "study.factors.N=[500]",
                "sampler.draws=4000",
                "model.priors.coef_sd=0.5",
                "model.priors.latent_var_shape=10",
                "model.priors.latent_var_scale=9",
                "model.priors.var_shape=10",
                "model.priors.var_scale=5",
                "+model.priors.loading_mean=1",
                "+model.priors.loading_sd=0.25",
            ],
        ),
        # The compiled engine: GLMM with correlated random intercept and slope, x MAR given y.
        # Residual variance IG(3, 2) (mean 1) and effect SDs half-normal(0.5): 94.8% of 500
        # fits converged at 4000 draws, 2.8 min on 2 cores (2026-12-07; 6 chains stuck, 18
        # short of ESS 400). Under the model's half-normal(5) residual SD (81% at 8000 draws)
        # or half-normal(1) SDs (78-88%), populations with y~~y tiny against a large slope
        # variance leave about 1 fit in 10 stuck: in a cluster of a few rows whose x is
        # partly missing, the slope and the imputed x values (of high leverage, far out) fit
        # each other with the wrong sign, y's residual variance absorbing the misfit
        # (docs/engine.md, "Known limits").
        (
            "glmm",
            500,
            [
                "study.estimators=[bayes]",
                "study.factors={J: [20], cluster_size: [8], missing_rate: [0.2], mechanism: [MAR]}",
                "sampler.draws=6000",
                "model.prior_families.residual=inverse_gamma",
                "+model.priors.var_shape=3",
                "+model.priors.var_scale=2",
                "model.priors.cov_scale=0.5",
            ],
        ),
        # The binary GLMM (random intercept and slope, correlated), J = 50 clusters of 10:
        # latent responses (probit) or Pólya–Gamma (logit), the effects also moved with the
        # responses integrated out. Effect SDs half-normal(0.5). 100 fits each (commit
        # 997f556, 2026-12-07, 2 cores shared with two other jobs): probit 98% converged,
        # 4.7 min; logit 100%, 2.8 min; both pass (every rank p-value above ALPHA).
        *(
            (
                "glmm_binary",
                100,
                [
                    "study.estimators=[bayes]",
                    "study.factors={J: [50], cluster_size: [10]}",
                    f"model.link={link}",
                    "sampler.draws=4000",
                    "model.priors.cov_scale=0.5",
                ],
            )
            for link in ("probit", "logit")
        ),
        # A binary mediator (probit; y reads its latent response), y missing at random given
        # x, y's residual variance IG(3, 2): 98% of 100 fits converged at 6000 draws, ranks
        # uniform (smallest p 0.12), 9.1 min on 2 busy cores (2026-12-07). At 4000 draws 88%;
        # at 2000 under the model's half-normal(1) residual SD 49%: the slow fits have a large
        # |y~m| with a small y~~y (y pins m*, and the thresholds and y's intercept creep
        # together) or a far threshold (a rare category).
        (
            "binary_mediator",
            100,
            [
                "study.estimators=[bayes]",
                "study.factors={N: [300], missing_rate: [0.2], mechanism: [MAR]}",
                "sampler.draws=6000",
                "model.prior_families.residual=inverse_gamma",
                "+model.priors.var_shape=3",
                "+model.priors.var_scale=2",
            ],
        ),
        # The compiled engine's ordinal CFA (conf/model/cfa_ordinal.yaml: 3 factors x 5
        # five-category items, std.all reported), probit and logit, its Gibbs sweep alone.
        # Proper priors on the latent response's scale (loadings N(1, 0.25^2), factor
        # variances IG(10, 9), mean 1; thresholds N(0, 1) kept increasing). Probit, 60 fits at
        # 6000 draws (commit a7e803d, 2026-12-07, 9.5 min on 2 cores at load 8-9): ranks
        # uniform (smallest p 0.015 of 78 estimands), no failed fit, but 33% of fits reach
        # ESS 400 on all 78 estimands: the middle thresholds (x1|t2, x8|t2) mix slowest, as
        # in compare_engine's ordinal_cfa rows. At 2000 draws none did. Logit, the same
        # (2026-12-07, 10.3 min at load 8): ranks uniform (smallest p 0.0014), no failed
        # fit, none converged: logit items are on the general path, not the indicators' sums
        # with their location and scale moves.
        pytest.param(
            "cfa_ordinal",
            60,
            [*CFA_ORDINAL, "model.link=probit"],
            id="cfa_ordinal_probit",
            marks=_short("33% of 60 fits converged at 6000 draws (thresholds mix slowest)"),
        ),
        pytest.param(
            "cfa_ordinal",
            60,
            [*CFA_ORDINAL, "model.link=logit"],
            id="cfa_ordinal_logit",
            marks=_short("0% of 60 fits converged at 6000 draws (logit items off the sums)"),
        ),
    ],
)
def test_sbc_ranks_are_uniform(run_cli, tmp_path, model, reps, extra):
    rc, out = run_cli(
        "study=sbc",
        f"model={model}",
        f"study.reps={reps}",
        "executor.dashboard=false",
        *([] if any(e.startswith("model.priors.coef_sd=") for e in extra) else [DEFAULT_COEF]),
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
