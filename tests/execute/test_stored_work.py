"""Finished work is never lost or double-counted: a design that shrinks or grows, a batch
copied into another condition's place, repeated records (issue 27, items 1, 3 and 4).

Closed-form estimator on the synchronous executor: these runs compile nothing.
"""

import shutil

import pandas as pd
from conftest import TINY, UNSIMULABLE, numbers, records_of

from simstudy.cli import main
from simstudy.store import read_manifest

OLS = [*TINY, "executor=synchronous", "executor.batch_size=2", "study.estimators=[ols_cc]"]


def _files(study):
    """Every batch file's bytes (checksums beside them included), by path."""
    return {p: p.read_bytes() for p in (study / "replications").rglob("*batch-*")}


def _reps(study):
    df = records_of(study)
    return df.groupby("condition_id")["rep"].apply(lambda r: sorted(set(r))).to_dict()


def test_lowering_then_raising_reps_rewrites_no_finished_batch(run_cli, tmp_path, capsys):
    assert run_cli(*OLS, "study.reps=6")[0] == 0
    study = tmp_path / "results" / "tiny"
    stored = _files(study)
    rc, out = run_cli(*OLS, "study.reps=3")  # batch 1 (reps 2-3) is now larger than needed
    assert rc == 0, out
    assert "recomputing" not in out and "0 batches to run" in out
    assert _files(study) == stored  # reps 3-5 are still on disk, byte for byte
    summary = pd.read_parquet(study / "summary.parquet")
    assert set(summary.loc[summary["measure"] == "bias", "n_reps"]) == {3}
    # status, replay and simulate still reach the reps beyond the current design
    assert main(["status", str(study)]) == 0
    assert "kept beyond the current design" in capsys.readouterr().out
    cid = next(iter(_reps(study)))
    assert main(["replay", str(study), "--condition", cid, "--rep", "5"]) == 0
    assert "identical to the stored replication" in capsys.readouterr().out
    out_csv = tmp_path / "sets" / "rep-*.csv"
    (tmp_path / "sets").mkdir()
    assert main(["simulate", str(study), "--condition", cid, "--out", str(out_csv)]) == 0
    assert len(list((tmp_path / "sets").glob("rep-*.csv"))) == 6
    capsys.readouterr()
    rc, out = run_cli(*OLS, "study.reps=8")  # only reps 6-7 are new
    assert rc == 0, out
    assert "1 batches to run" not in out and "2 batches to run" in out  # one per condition
    assert all(_files(study)[p] == b for p, b in stored.items())
    assert all(reps == list(range(8)) for reps in _reps(study).values())


def test_raising_reps_fills_a_short_batch_beside_it_without_rewriting_it(run_cli, tmp_path):
    assert run_cli(*OLS, "study.reps=3")[0] == 0  # batch 1 holds rep 2 only
    study = tmp_path / "results" / "tiny"
    stored = _files(study)
    rc, out = run_cli(*OLS, "study.reps=6")
    assert rc == 0, out
    assert "recomputing" not in out
    assert all(_files(study)[p] == b for p, b in stored.items())
    parts = sorted(p.name for p in (study / "replications").rglob("batch-00001-r3.parquet"))
    assert len(parts) == 2  # rep 3, one file per condition, beside batch 1
    assert all(reps == list(range(6)) for reps in _reps(study).values())
    # the same numbers as a study run at 6 reps from the start
    rc, _ = run_cli(*OLS, "study.reps=6", "study.name=straight")
    assert rc == 0
    a, b = records_of(study), records_of(tmp_path / "results" / "straight")
    cols = ["condition_id", "rep", "estimator", "parameter", "estimate", "se", "lower", "upper"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_a_batch_copied_into_another_condition_is_refused_and_recomputed(run_cli, tmp_path, capsys):
    assert run_cli(*OLS)[0] == 0
    study = tmp_path / "results" / "tiny"
    before = records_of(study)
    source, target = sorted((study / "replications").glob("condition=*"))
    for name in ("batch-00000.parquet", ".batch-00000.parquet.sha256"):  # with its checksum
        shutil.copy(source / name, target / name)
    assert main(["status", str(study)]) == 0
    out = capsys.readouterr().out
    assert "to recompute" in out and "holds records of condition" in out
    assert main(["aggregate", str(study)]) == 2
    err = capsys.readouterr().err
    assert "batch-00000.parquet" in err and target.name.split("=")[1] in err
    rc, out = run_cli(*OLS)
    assert rc == 0, out
    assert "recomputing" in out and "1 batches to run" in out
    pd.testing.assert_frame_equal(numbers(records_of(study)), numbers(before))
    summary = pd.read_parquet(study / "summary.parquet")
    assert set(summary.loc[summary["measure"] == "bias", "n_reps"]) == {6}


def test_a_batch_of_another_config_is_refused_by_aggregate(run_cli, tmp_path, capsys):
    assert run_cli(*OLS)[0] == 0
    assert run_cli(*OLS, "study.name=other", "study.seed=99")[0] == 0
    study, other = tmp_path / "results" / "tiny", tmp_path / "results" / "other"
    folder = sorted((study / "replications").glob("condition=*"))[0]
    for name in ("batch-00000.parquet", ".batch-00000.parquet.sha256"):
        shutil.copy(other / "replications" / folder.name / name, folder / name)
    assert read_manifest(study).config_hash != read_manifest(other).config_hash
    assert main(["aggregate", str(study)]) == 2
    err = capsys.readouterr().err
    assert "config hash" in err and "batch-00000.parquet" in err


def test_a_copy_of_a_batch_under_another_name_is_refused_before_any_work(run_cli, tmp_path):
    assert run_cli(*OLS)[0] == 0
    study = tmp_path / "results" / "tiny"
    folder = sorted((study / "replications").glob("condition=*"))[0]
    shutil.copy(folder / "batch-00000.parquet", folder / "batch-00007.parquet")
    shutil.copy(folder / ".batch-00000.parquet.sha256", folder / ".batch-00007.parquet.sha256")
    stored = _files(study)
    rc, out = run_cli(*OLS)
    assert rc == 2 and "both hold rep 0" in out and "Traceback" not in out
    assert _files(study) == stored


def _duplicated(tmp_path, capsys, run_cli):
    assert run_cli(*OLS)[0] == 0
    records = records_of(tmp_path / "results" / "tiny")
    path = tmp_path / "records.parquet"
    pd.concat([records, records.iloc[:3]]).to_parquet(path)
    return path


def test_repeated_records_are_refused_by_name(run_cli, tmp_path, capsys):
    path = _duplicated(tmp_path, capsys, run_cli)
    assert main(["aggregate", str(path), "--by", "N,missing_rate,mechanism"]) == 2
    err = capsys.readouterr().err
    assert "3 repeated rows" in err and "--dedupe" in err and "rep 0" in err
    assert not path.with_name("records-summary.parquet").exists()


def test_dedupe_keeps_the_first_of_repeated_records_and_says_how_many(run_cli, tmp_path, capsys):
    path = _duplicated(tmp_path, capsys, run_cli)
    assert main(["aggregate", str(path), "--by", "N,missing_rate,mechanism", "--dedupe"]) == 0
    assert "dropped 3 repeated rows" in capsys.readouterr().out
    summary = pd.read_parquet(path.with_name("records-summary.parquet"))
    assert set(summary.loc[summary["measure"] == "bias", "n_reps"]) == {6}


def test_a_data_set_that_cannot_be_simulated_is_failed_rows_and_the_run_exits_1(run_cli, tmp_path):
    rc, out = run_cli(*TINY, "executor=synchronous", "executor.batch_size=2", *UNSIMULABLE)
    assert rc == 1, out
    assert "Traceback" not in out
    assert "sum_score_ols: 2 of 2 fits failed" in out and "no successful fit" in out
    study = tmp_path / "results" / "tiny"
    records = records_of(study)
    assert len(records) > 0 and set(records["status"]) == {"failed"}
    assert records["error"].str.startswith("simulate: InputError").all()
    assert records["error"].str.contains("eta_y~~eta_y").all()
    assert read_manifest(study).runs[-1]["status"] == "finished"  # not left 'running'


def test_a_population_value_that_overflows_is_refused_before_any_work(run_cli, tmp_path):
    """The spec model computes s2 = sigma^2 from the params: 1e400 is no number to simulate."""
    rc, out = run_cli(*OLS, "study.reps=2", "model.params.sigma=1e200")
    assert rc == 2, out
    assert "Traceback" not in out
    assert "model.params.s2 = 'sigma^2'" in out and "finite" in out
    assert not (tmp_path / "results" / "tiny").exists()


def test_failures_past_the_rate_fail_the_run_below_min_reps_for_stop(run_cli, tmp_path):
    # N = 7 with half of x missing: some complete-case fits have too few rows to fit
    args = [
        *OLS,
        "study.reps=10",
        "study.factors.N=[7]",
        "study.factors.missing_rate=[0.5]",
        "study.factors.mechanism=[MCAR]",
        "study.min_reps_for_stop=1000",
        "study.max_failure_rate=0.01",
    ]
    rc, out = run_cli(*args)
    assert rc == 1, out
    assert "stopped early" not in out and "more than study.max_failure_rate=0.01" in out
    rc, out = run_cli(*args, "study.max_failure_rate=1")  # tolerated: said, exit 0
    assert rc == 0 and "fits failed" in out
