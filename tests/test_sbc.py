"""Simulation-based calibration: ranks, the uniformity test, and the study type end to end."""

import numpy as np
import pandas as pd
import pytest

from simstudy.aggregate import summarise
from simstudy.aggregate.sbc import bins_for, rank_histogram, uniformity_p_value
from simstudy.aggregate.tables import to_markdown, wide_table
from simstudy.cli import load_plan
from simstudy.engine.summary import sbc_ranks


def test_ranks_count_draws_below_truth_after_even_thinning():
    draws = {"a": np.arange(2000, dtype=float).reshape(2, 1000)}
    ranks, kept = sbc_ranks(draws, {"a": -1.0})
    assert kept == 98 and ranks["a"] == 0  # 49 draws kept per chain
    ranks, _ = sbc_ranks(draws, {"a": 1e9})
    assert ranks["a"] == 98
    ranks, _ = sbc_ranks(draws, {"a": 500.0})
    assert 20 < ranks["a"] < 30  # about half of chain 1's kept draws


def test_uniform_ranks_pass_and_skewed_ranks_fail():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 100, size=1000)
    counts, share = rank_histogram(uniform, 99, 10)
    assert counts.sum() == 1000 and share.sum() == pytest.approx(1.0)
    assert uniformity_p_value(counts, share) > 0.01
    # an overconfident posterior puts the truth in the tails
    tails = np.concatenate([rng.integers(0, 10, 500), rng.integers(90, 100, 500)])
    counts, share = rank_histogram(tails, 99, 10)
    assert uniformity_p_value(counts, share) < 1e-10
    # a biased posterior shifts ranks to one side
    biased = rng.integers(0, 60, size=1000)
    assert uniformity_p_value(*rank_histogram(biased, 99, 10)) < 1e-10
    assert bins_for(20) == 4 and bins_for(1000) == 10 and bins_for(3) == 2


def _sbc_records(rhat, ess, status):
    """Records of fits ``rep`` of estimands a and b: R-hat, bulk ESS and status per fit."""
    rows = []
    for rep, (r, e, st) in enumerate(zip(rhat, ess, status, strict=True)):
        for parameter, worse in (("a", 0), ("b", 1)):  # b carries the fit's worst values
            rows.append(
                {
                    "condition_id": "c1",
                    "rep": rep,
                    "estimator": "bayes",
                    "parameter": parameter,
                    "truth": 0.0,
                    "estimate": 0.1,
                    "se": 1.0,
                    "lower": -2.0,
                    "upper": 2.0,
                    "ess_bulk": e if worse else 5000.0,
                    "ess_tail": 1000.0,
                    "rhat": r if worse else 1.0,
                    "n_divergent": 0,
                    "status": st,
                    "error": "",
                    "seconds": 1.0,
                    "sbc_rank": rep % 99,
                    "sbc_draws": 98,
                }
            )
    return pd.DataFrame(rows)


def test_sbc_table_prints_the_share_of_fits_converged_on_every_estimand():
    # fits: converged, R-hat 1.02, ESS 399, converged, failed (ranks of 4 fits, 5 fits)
    records = _sbc_records(
        [1.0, 1.02, 1.0, 1.005, float("nan")],
        [900.0, 900.0, 399.0, 400.0, float("nan")],
        ["ok", "ok", "ok", "ok", "failed"],
    )
    summary = summarise(records)
    share = summary[summary["measure"] == "sbc_converged"].set_index("parameter")
    assert share["value"].tolist() == [0.4, 0.4] and share["n_reps"].tolist() == [5, 5]
    assert share["note"].iloc[0] == "R-hat <= 1.01 and bulk ESS >= 400 on every estimand"
    wide = wide_table(summary, [], "sbc")
    assert wide.title.endswith("Converged: share of fits at " + share["note"].iloc[0])
    table = to_markdown(wide)
    assert "bayes: Converged" in table and "0.400 (0.219)" in table


def test_sbc_plan_defaults_to_posterior_estimators_and_their_sampler():
    proper = ["model.priors.latent_var_shape=2", "model.priors.latent_var_scale=0.5"]
    plan = load_plan(["study=sbc", "model=latent_interaction", *proper])
    assert plan.kind == "sbc" and plan.estimators == ("bayes",) and plan.sampler.name == "gibbs"
    # a spec model's posteriors on the study's sampler (HMC by default, the sweep on gibbs)
    assert load_plan(["study=sbc"]).estimators == ("bayes_fiml", "bayes_fiml_marginal", "bayes_cc")
    assert load_plan(["study=sbc", "sampler=gibbs"]).estimators == ("bayes",)


# slow tier (default-tier time); the cheap check of the same: ranks, table and plan: the unit
# tests above; every spec's prior draws: tests/spec/test_spec_sbc.py
@pytest.mark.slow
def test_sbc_study_end_to_end(run_cli, tmp_path):
    rc, out = run_cli(
        "study=sbc",
        "study.reps=12",
        "study.factors.N=[60]",
        "study.estimators=[bayes_cc]",  # one program; every estimator: the slow tier's
        "model.priors.coef_sd=1",
        "sampler.warmup=150",
        "sampler.draws=200",
        "executor=synchronous",
    )
    assert rc == 0, out
    study = tmp_path / "results" / "sbc"
    records = pd.read_parquet(study / "replications")
    assert records["sbc_draws"].unique().tolist() == [98]
    assert records["sbc_rank"].between(0, 98).all()
    assert records.groupby("rep")["truth"].nunique().max() == 4  # each rep its own prior draw
    assert records.groupby("parameter")["truth"].nunique().min() == 12
    summary = pd.read_parquet(study / "summary.parquet")
    p = summary[summary["measure"] == "sbc_p_value"]
    assert len(p) == 4 and p["value"].between(0, 1).all()
    bins = summary[summary["measure"].str.startswith("sbc_bin_")]
    assert bins.groupby(["estimator", "parameter"])["value"].sum().eq(12).all()
    table = (study / "tables" / "sbc.md").read_text()
    assert "rank histogram" in table and "Converged" in table
    share = summary[summary["measure"] == "sbc_converged"]
    assert len(share) == 4 and share["value"].between(0, 1).all()  # one estimator, 4 estimands
    assert (share["n_reps"] == 12).all()
