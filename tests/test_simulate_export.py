"""`simstudy simulate` (a study's data sets as tables) and `simstudy replay --save`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simstudy.cli import load_plan, main
from simstudy.design import condition_id, expand_grid
from simstudy.engine.replicate import _simulate
from simstudy.export import dataset_frame, keyed_frame
from simstudy.models import family_of
from simstudy.spec import dgm
from tests.conftest import TINY, records_of

#: A study of the closed-form estimator only: nothing compiles but the simulator.
OLS = [
    "study.name=sim",
    "study.reps=3",
    "study.factors.N=[40]",
    "study.factors.missing_rate=[0.3]",
    "study.factors.mechanism=[MCAR,MAR]",
    "study.estimators=[ols_cc]",
    "executor=synchronous",
    "executor.dashboard=false",
]


@pytest.fixture
def ols_study(run_cli, tmp_path: Path) -> Path:
    rc, out = run_cli(*OLS)
    assert rc == 0, out
    return tmp_path / "results" / "sim"


def _cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_simulated_rep_refits_to_the_stored_estimate(ols_study, tmp_path, capsys, suffix):
    stored = records_of(ols_study)
    cid = sorted(stored["condition_id"].unique())[1]
    data = tmp_path / f"rep1{suffix}"
    rc, out = _cli(
        capsys, "simulate", str(ols_study), "--condition", cid, "--rep", "1", "--out", str(data)
    )
    assert rc == 0, out
    table = pd.read_csv(data) if suffix == ".csv" else pd.read_parquet(data)
    assert list(table.columns) == ["condition_id", "rep", "seed", "y", "x", "z"]
    assert len(table) == 40 and table["x"].isna().any() and not table["y"].isna().any()
    row = stored[(stored["condition_id"] == cid) & (stored["rep"] == 1)]
    assert (table["seed"] == row["seed"].iloc[0]).all() and (table["condition_id"] == cid).all()
    fit = tmp_path / "fit.parquet"
    rc, out = _cli(
        capsys, "fit", "model=regression_missing", f"data={data}", "estimator=ols_cc", f"out={fit}"
    )
    assert rc == 0, out
    refit = pd.read_parquet(fit).set_index("parameter")
    for _, r in row.iterrows():  # bit for bit: float32 values are written with their digits
        assert refit.loc[r["parameter"], "mean"] == r["estimate"]
        assert refit.loc[r["parameter"], "sd"] == r["se"]
        assert refit.loc[r["parameter"], "lower"] == r["lower"]


def test_simulate_a_condition_all_conditions_and_one_file_per_rep(ols_study, tmp_path, capsys):
    cids = sorted(records_of(ols_study)["condition_id"].unique())
    whole = tmp_path / "whole.parquet"
    rc, out = _cli(capsys, "simulate", str(ols_study), "--condition", cids[0], "--out", str(whole))
    assert rc == 0 and "3 data sets of study sim (120 rows)" in out, out
    table = pd.read_parquet(whole)
    assert table["rep"].tolist() == [0] * 40 + [1] * 40 + [2] * 40
    rc, out = _cli(
        capsys,
        "simulate",
        str(ols_study),
        "--condition",
        cids[0],
        "--out",
        str(tmp_path / "rep*.csv"),
    )
    assert rc == 0, out
    for rep in range(3):
        one = pd.read_csv(tmp_path / f"rep{rep}.csv")
        part = table[table["rep"] == rep].reset_index(drop=True)
        pd.testing.assert_frame_equal(one, part, check_dtype=False)
    rc, out = _cli(capsys, "simulate", str(ols_study), "--all", "--rep", "2", "--out", str(whole))
    assert rc == 0, out
    table = pd.read_parquet(whole)
    assert sorted(table["condition_id"].unique()) == cids and set(table["rep"]) == {2}


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--condition", "nope", "--out", "d.csv"], "--condition"),
        (["--condition", "{cid}", "--rep", "3", "--out", "d.csv"], "--rep"),
        (["--condition", "{cid}", "--rep", "-1", "--out", "d.csv"], "--rep"),
        (["--condition", "{cid}", "--out", "d.txt"], "--out"),
        (["--condition", "{cid}", "--out", "a*/d*.csv"], "--out"),
    ],
)
def test_simulate_refuses_bad_input(ols_study, tmp_path, capsys, argv, field):
    cid = sorted(records_of(ols_study)["condition_id"].unique())[0]
    argv = [a.format(cid=cid) if "{" in a else a for a in argv]
    argv = [str(tmp_path / a) if a.endswith((".csv", ".txt")) else a for a in argv]
    rc, out = _cli(capsys, "simulate", str(ols_study), *argv)
    assert rc == 2 and f"simstudy: error: {field} = " in out, out
    assert not list(tmp_path.glob("d.*"))


def test_simulate_without_a_manifest(tmp_path, capsys):
    rc, out = _cli(capsys, "simulate", str(tmp_path), "--all", "--out", str(tmp_path / "d.csv"))
    assert rc == 2 and "RESULTS_DIR = " in out and "manifest.json" in out


@pytest.mark.parametrize(
    "overrides",
    [
        ["study.factors.mechanism=[MAR]"],
        [
            "study=latent_interaction",
            "model=latent_interaction_d",
            "study.factors.N=[60]",
            "study.factors.missing_rate=[0.3]",
        ],
        [
            "study=latent_interaction",
            "model=latent_interaction_w",
            "study.factors.N=[60]",
            "study.factors.missing_rate=[0.3]",
        ],
        ["study=cfa_ordinal", "study.factors.N=[60]", "study.factors.missing_rate=[0.2]"],
        ["study=glmm"],
    ],
    ids=["regression", "latent-nominal", "latent-observed", "cfa-ordinal", "glmm"],
)
def test_a_written_data_set_reads_back_as_the_data_set(overrides):
    plan = load_plan(overrides)
    condition = expand_grid(plan.factors, plan.exclude)[0]
    rep = _simulate(plan, condition, 0)
    frame = dataset_frame(plan.model, rep.dataset)
    assert frame.isna().any().any() or plan.model.name == "glmm"
    back = family_of(plan.model).from_frame(frame, plan.model.structure)
    real = np.asarray(rep.dataset.get(dgm.ROW_REAL, np.ones(len(frame), bool)), bool)
    for key, value in back.items():
        original = np.asarray(rep.dataset[key])
        if original.shape[:1] == real.shape and not real.all():  # padding rows are not written
            original = original[real]
        assert np.array_equal(np.asarray(value), original), key
    keyed = keyed_frame(plan.model, rep.dataset, rep.base)
    assert list(keyed.columns[:3]) == ["condition_id", "rep", "seed"]
    assert (keyed["condition_id"] == condition_id(condition)).all()


def test_replay_saves_data_and_posterior_as_inference_data(run_cli, tmp_path, capsys):
    import arviz as az

    rc, out = run_cli(
        *TINY, "study.reps=2", "study.factors.mechanism=[MAR]", "executor=synchronous"
    )
    assert rc == 0, out
    study = tmp_path / "results" / "tiny"
    stored = records_of(study)
    cid = stored["condition_id"].iloc[0]
    save = tmp_path / "inspect"
    rc, out = _cli(
        capsys, "replay", str(study), "--condition", cid, "--rep", "1", "--save", str(save)
    )
    assert rc == 0 and "identical to the stored replication" in out, out
    assert "their summary is the replayed estimates" in out, out
    idata = az.from_netcdf(save / f"{cid}-rep1-bayes_cc.nc")
    posterior = idata.posterior
    assert sorted(posterior.data_vars) == sorted(
        stored.query("estimator == 'bayes_cc'")["parameter"].unique()
    )
    plan = load_plan([*TINY, "study.reps=2", "study.factors.mechanism=[MAR]"])
    for name in posterior.data_vars:
        assert posterior[name].dims == ("chain", "draw")
        assert posterior[name].shape == (plan.sampler.chains, plan.sampler.draws)
    row = stored[(stored["rep"] == 1) & (stored["estimator"] == "bayes_cc")]
    means = {p: float(posterior[p].mean()) for p in posterior.data_vars}
    for _, r in row.iterrows():
        assert means[r["parameter"]] == pytest.approx(r["estimate"], rel=1e-5)
    assert posterior.attrs["condition_id"] == cid and posterior.attrs["rep"] == 1
    assert idata.observed_data["x"].dims == ("row",) and np.isnan(idata.observed_data["x"]).any()
    data = pd.read_parquet(save / f"{cid}-rep1.parquet")
    rc, out = _cli(
        capsys,
        "simulate",
        str(study),
        "--condition",
        cid,
        "--rep",
        "1",
        "--out",
        str(tmp_path / "d.parquet"),
    )
    assert rc == 0, out
    pd.testing.assert_frame_equal(data, pd.read_parquet(tmp_path / "d.parquet"))
    assert not (save / f"{cid}-rep1-ols_cc.nc").exists()  # a closed form has no posterior


def test_replay_save_refuses_an_unwritable_directory(ols_study, tmp_path, capsys):
    cid = sorted(records_of(ols_study)["condition_id"].unique())[0]
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, out = _cli(
        capsys,
        "replay",
        str(ols_study),
        "--condition",
        cid,
        "--rep",
        "0",
        "--save",
        str(blocker / "x"),
    )
    assert rc == 2 and "--save = " in out, out
    rc, out = _cli(
        capsys,
        "replay",
        str(ols_study),
        "--condition",
        cid,
        "--rep",
        "0",
        "--save",
        str(tmp_path / "s"),
    )
    assert rc == 0 and "posterior: none written" in out, out
    assert (tmp_path / "s" / f"{cid}-rep0.parquet").is_file()


@pytest.mark.slow
def test_estimators_on_their_own_samplers_replay_with_their_own_draws(run_cli, tmp_path, capsys):
    """A Gibbs sweep (its own settings, 4 replications per program) beside ChEES-HMC.

    Each estimator's stored rows are replayed exactly, its posterior has its own sampler's
    chains and draws.
    """
    import arviz as az

    mixed = [
        *[o for o in TINY if not o.startswith(("sampler", "study.estimators"))],
        "sampler=chees",
        "sampler.chains=2",
        "sampler.warmup=60",
        "sampler.draws=60",
        "study.estimators=[bayes_cc,bayes]",
        "+sampler@samplers.bayes=gibbs",
        "samplers.bayes.warmup=50",
        "samplers.bayes.draws=90",
        "samplers.bayes.vectorize=4",
        "study.reps=5",
        "executor=synchronous",
    ]
    rc, out = run_cli(*mixed)
    assert rc == 0, out
    study = tmp_path / "results" / "tiny"
    stored = records_of(study)
    assert (stored["status"] == "ok").all() and set(stored["estimator"]) == {"bayes_cc", "bayes"}
    cid = stored["condition_id"].iloc[0]
    save = tmp_path / "inspect"
    rc, out = _cli(
        capsys, "replay", str(study), "--condition", cid, "--rep", "4", "--save", str(save)
    )
    assert rc == 0 and "identical to the stored replication" in out, out
    shapes = {"bayes_cc": (2, 60), "bayes": (2, 90)}  # gibbs: its own 2 chains x 90 draws
    for name, shape in shapes.items():
        posterior = az.from_netcdf(save / f"{cid}-rep4-{name}.nc").posterior
        assert posterior["y~x"].shape == shape, name
