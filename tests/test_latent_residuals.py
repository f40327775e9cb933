"""Residual diagnostics from imputed latent scores (`simstudy diagnose`, issue 20 item 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import TINY, latent_interaction, ols, records_of

from simstudy.cli import main
from simstudy.config import SamplerSettings
from simstudy.diagnostics import latent_residuals as lr
from simstudy.engine import gibbs
from simstudy.spec.info import spec_of

#: The latent interaction spec config; a strong interaction at a small N. The study below has
#: the same N and sampler settings, so both fit one compiled program.
MODEL = latent_interaction()
SETTING = {**MODEL.setting, "b3": 0.5}
SAMPLER = SamplerSettings(name="gibbs", chains=2, warmup=100, draws=100)
M = 10
#: ``bayes`` as a study builds it (the compiled program's key)
BAYES = MODEL.estimators["bayes"]
COLUMNS = ("eta_x", "eta_m", "eta_y")


def _scores(data, key, imputations):
    """States of ``bayes``'s chain as scores of eta_x, eta_m, eta_y."""
    spec = spec_of(MODEL.plan.model.structure)
    return lr.spec_score_imputations(
        BAYES, spec, COLUMNS, data, key, SAMPLER, MODEL.priors, imputations
    )


def _population_scores(b3: float, n: int, m: int, seed: int = 0) -> np.ndarray:
    """``m`` noisy copies of latent scores from the DGM: stand-ins for imputations."""
    rng = np.random.default_rng(seed)
    ex = rng.standard_normal(n)
    em = 0.3 * ex + np.sqrt(0.91) * rng.standard_normal(n)
    ey = 0.3 * ex + 0.3 * em + b3 * ex * em + 0.6 * rng.standard_normal(n)
    true = np.stack([ex, em, ey], axis=1)
    return true + 0.1 * rng.standard_normal((m, n, 3))


def test_the_statistics_on_known_scores():
    stats = lr.residual_diagnostics(_population_scores(0.5, 4000, 5)).models.set_index("model")
    # b3 Cov(x, f) Cov(m, f) / Var(f) with f = 0.3 (x + m): 0.5 * 0.39^2 / 0.234 = 0.325
    assert stats.loc["linear", "curvature"] == pytest.approx(0.325, abs=0.04)
    assert abs(stats.loc["product", "curvature"]) < 3 * stats.loc["product", "curvature_se"]
    assert stats.loc["product", "r2"] > stats.loc["linear", "r2"]
    assert stats.loc["linear", "formula"] == "eta_y ~ eta_x + eta_m"
    assert stats.loc["product", "formula"] == "eta_y ~ eta_x + eta_m + eta_x:eta_m"
    flat = lr.residual_diagnostics(_population_scores(0.0, 4000, 5)).models.set_index("model")
    assert (flat["curvature"].abs() < 3 * flat["curvature_se"]).all()
    means = lr.binned_means(np.arange(10.0), np.arange(10.0) ** 2, 2)
    assert means["predicted"].tolist() == [2.0, 7.0] and means["residual"].tolist() == [6.0, 51.0]
    with pytest.raises(ValueError, match="at least 2"):
        lr.residual_diagnostics(np.zeros((1, 50, 3)))


# slow tier: the statistics on known scores and the diagnose command run by default
@pytest.mark.slow
def test_imputed_scores_show_the_missing_interaction(tmp_path):
    data = MODEL.family.simulate(jax.random.key(11), SETTING)
    scores = _scores(data, jax.random.key(3), M)
    assert scores.shape == (M, 300, 3)
    diagnostics = lr.residual_diagnostics(scores)
    stats = diagnostics.models.set_index("model")
    # measured on the spec: linear +0.276 (SE 0.035), product +0.010 (SE 0.029)
    assert stats.loc["linear", "curvature_lower"] > 0.15
    assert abs(stats.loc["product", "curvature"]) < 0.1
    assert abs(stats.loc["product", "curvature"]) < 3 * stats.loc["product", "curvature_se"]
    assert len(diagnostics.persons) == 2 * 300
    paths = lr.write_diagnostics(diagnostics, tmp_path, "residuals-x-0", "t", {"rep": 0})
    assert all(p.stat().st_size > 0 for p in paths)
    back, meta = lr.read_diagnostics(paths[2])
    assert meta == {"rep": 0}
    pd.testing.assert_frame_equal(back.models, diagnostics.models, check_dtype=False)


@pytest.mark.slow
def test_the_scores_are_the_states_fs_imputation_analyses():
    """With fs_imputation's key and M, its OLS of each state is OLS of these scores."""
    data = MODEL.family.simulate(jax.random.key(11), SETTING)
    estimator = MODEL.estimators["fs_imputation"]
    key = jax.random.key(3)
    scores = _scores(data, key, estimator.imputations)
    program = gibbs.imputation_program(estimator, SAMPLER, MODEL.priors, data)
    estimates, _ = program(key, {k: jnp.asarray(v) for k, v in data.items()})
    name = "eta_y~eta_x:eta_m"
    theirs = np.asarray(estimates[name]).reshape(-1)[: estimator.imputations]
    ours = []
    for s in scores:
        x, m, y = s[:, 0], s[:, 1], s[:, 2]
        ours.append(ols(np.column_stack([np.ones_like(x), x, m, x * m]), y)[0][3])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


# slow tier: a study, a Gibbs chain and a report; by default diagnose's refusals and the
# residual statistics on known scores run here
@pytest.mark.slow
def test_diagnose_writes_its_files_and_the_report_shows_them(run_cli, tmp_path, capsys):
    args = [
        "study=latent_interaction",
        "study.name=li_tiny",
        "study.reps=2",
        "study.factors.N=[300]",
        "study.estimators=[sum_score_ols]",
        "model.params.b3=0.5",
        f"sampler.warmup={SAMPLER.warmup}",
        f"sampler.draws={SAMPLER.draws}",
        "executor=synchronous",
    ]
    rc, out = run_cli(*args)
    assert rc == 0, out
    study = tmp_path / "results" / "li_tiny"
    cid = records_of(study)["condition_id"].iloc[0]
    base = ["diagnose", str(study), "--condition", cid]
    assert main([*base, "--rep", "1", "--imputations", str(M)]) == 0
    printed = capsys.readouterr().out
    assert "curvature" in printed and "eta_x:eta_m" in printed
    stem = study / "diagnostics" / f"residuals-{cid}-1"
    for suffix in (".png", ".pdf", ".parquet"):
        assert stem.with_suffix(suffix).is_file()
    table = pd.read_parquet(stem.with_suffix(".parquet")).drop_duplicates("model")
    stats = table.set_index("model")
    assert stats.loc["linear", "curvature_lower"] > 0 and stats["imputations"].eq(M).all()

    assert main(["report", str(study)]) == 0
    capsys.readouterr()
    html = (study / "report.html").read_text()
    assert "Residual diagnostics" in html and f"residuals-{cid}-1" in html
    assert (study / "figures" / f"residuals-{cid}-1.png").is_file()
    assert "true interaction 0.5" in (study / "report.md").read_text()

    for extra, field in (
        (["--rep", "2"], "--rep = 2"),
        (["--rep", "-1"], "--rep = -1"),
        (["--rep", "0", "--imputations", "1"], "--imputations = 1"),
        (["--rep", "0", "--imputations", "201"], "--imputations = 201"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert field in err and "Traceback" not in err
    assert main(["diagnose", str(study), "--condition", "nope", "--rep", "0"]) == 2
    assert "--condition = 'nope'" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "none"), "--condition", cid, "--rep", "0"]) == 2
    assert "RESULTS_DIR" in capsys.readouterr().err


def test_diagnose_refuses_another_model(run_cli, tmp_path, capsys):
    rc, out = run_cli(*TINY, "executor=synchronous", "study.estimators=[ols_cc]")
    assert rc == 0, out
    study = tmp_path / "results" / "tiny"
    assert main(["diagnose", str(study), "--condition", "any", "--rep", "0"]) == 2
    err = capsys.readouterr().err
    assert "model = 'regression_missing'" in err and "product of two variables" in err
    assert not (study / "diagnostics").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["study=latent_interaction"], ("bayes", ("eta_x", "eta_m", "eta_y"), "eta_x:eta_m")),
        (
            ["study=latent_interaction", "model=latent_interaction_w"],
            ("bayes", ("eta_x", "w", "eta_y"), "eta_x:w"),
        ),
        (["model=cfa", "study.estimators=[bayes]"], "product of two variables"),  # a spec now
        ([], "product of two variables"),  # regression_missing: no interaction
        (
            [
                "study=latent_interaction",
                "model.estimators={sso: {kind: sum_score_ols}}",
                "study.estimators=[sso]",
            ],
            "a gibbs estimator",
        ),
    ],
    ids=["spec", "spec_w", "cfa", "regression", "no_chain"],
)
def test_the_scores_come_from_the_models_kind(overrides, expected):
    """A spec's scores are its product equation's variables in its Gibbs chain's states."""
    from simstudy.cli import load_plan

    imputer = lr.imputer_of(load_plan(overrides))
    if isinstance(expected, str):
        assert isinstance(imputer, str) and expected in imputer
        return
    sampler, columns, product = expected
    assert (imputer.sampler, imputer.columns) == (sampler, columns)
    assert imputer.product.endswith(product)


# slow tier (default-tier time); the cheap check of the same: where the scores come from:
# test_the_scores_come_from_the_models_kind, test_the_scores_are_the_states_fs_imputation_analyses
@pytest.mark.slow
def test_diagnose_runs_on_a_spec_studys_compiled_chain(run_cli, tmp_path, capsys):
    n, m = 80, 4
    rc, out = run_cli(
        "study=latent_interaction",
        "study.name=li_spec",
        "study.reps=1",
        f"study.factors.N=[{n}]",
        "study.estimators=[sum_score_ols]",  # closed form: the study compiles no chain
        "sampler.chains=2",
        "sampler.warmup=20",
        "sampler.draws=20",
        "executor=synchronous",
    )
    assert rc == 0, out
    study = tmp_path / "results" / "li_spec"
    cid = records_of(study)["condition_id"].iloc[0]
    assert (
        main(["diagnose", str(study), "--condition", cid, "--rep", "0", "--imputations", str(m)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "eta_y ~ eta_x + eta_m + eta_x:eta_m" in printed and "curvature" in printed
    stem = study / "diagnostics" / f"residuals-{cid}-0"
    for suffix in (".png", ".pdf", ".parquet"):
        assert stem.with_suffix(suffix).stat().st_size > 0
    back, meta = lr.read_diagnostics(stem.with_suffix(".parquet"))
    assert meta["sampler"] == "bayes" and meta["rep"] == 0 and meta["imputations"] == m
    assert meta["true_interaction"] == pytest.approx(0.2)  # the spec's b3, by its lavaan name
    assert len(back.persons) == 2 * n and back.persons["residual"].notna().all()
    stats = back.models.set_index("model")
    # the product is one more regressor on the same scores: R^2 cannot drop
    assert stats.loc["product", "r2"] >= stats.loc["linear", "r2"] > 0
    assert (stats["imputations"] == m).all()
