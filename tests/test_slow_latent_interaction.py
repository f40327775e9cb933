"""Slow tier: the latent interaction study at reduced replications (`pytest -m slow`)."""

import pandas as pd
import pytest

from simstudy.store import read_replications

pytestmark = pytest.mark.slow


def test_latent_interaction_study_reduced(run_cli, tmp_path):
    rc, out = run_cli(
        "study=latent_interaction",
        "study.reps=60",
        "study.factors.N=[500]",
        "executor.dashboard=false",
    )
    assert rc == 0, out
    study = tmp_path / "results" / "latent_interaction"
    s = pd.read_parquet(study / "summary.parquet").set_index(["estimator", "parameter", "measure"])
    for par in ("eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m", "eta_m~eta_x"):
        rel = s.loc[("bayes", par, "rel_bias")]
        assert abs(rel["value"]) < 0.05 + 3 * rel["mcse"], par
        assert 0.85 <= s.loc[("bayes", par, "coverage"), "value"] <= 1.0, par
        ratio = s.loc[("fs_imputation", par, "rmse_ratio")]
        assert abs(ratio["value"] - 1) < 0.25, par
    naive = s.loc[("sum_score_ols", "eta_y~eta_x:eta_m", "rel_bias")]
    assert naive["value"] + 2 * naive["mcse"] < 0  # attenuated
    records = read_replications(study)
    bayes = records[
        (records["estimator"] == "bayes")
        & records["parameter"].isin(
            ["eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m", "eta_m~eta_x"]
        )
    ]
    per_fit = bayes.groupby("rep").agg(rhat=("rhat", "max"), ess=("ess_bulk", "min"))
    assert ((per_fit["rhat"] <= 1.01) & (per_fit["ess"] >= 400)).mean() >= 0.95
