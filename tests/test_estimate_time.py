"""A run's time: the ETA leaves compilation out; show times a pilot or matching stored fits."""

import io
import math

import jax
import jax.numpy as jnp
from conftest import TINY

from simstudy.cli import main
from simstudy.execute.eta import BatchTime, compile_seconds, remaining_seconds
from simstudy.execute.progress import RunProgress
from simstudy.execute.runner import run_guarded

#: A first batch that compiled for 40 s of its 41, then batches that only fit.
FIRST = BatchTime(wall=41.0, fit=0.8, compile=40.0)
LATER = [BatchTime(wall=1.1, fit=0.9), BatchTime(wall=0.9, fit=0.8)]


def test_the_eta_leaves_the_first_batchs_compilation_out():
    eta = remaining_seconds([FIRST], remaining=20, workers=1)
    assert eta == 20 * 1.0  # its wall time less its compilation
    eta = remaining_seconds([FIRST, *LATER], remaining=20, workers=4)
    assert math.isclose(eta, 20 / 4 * (1.0 + 1.1 + 0.9) / 3)
    # an estimate from wall time alone counts the compilation into every batch
    assert eta < 20 / 4 * (41.0 + 1.1 + 0.9) / 3 / 10
    assert remaining_seconds([FIRST], remaining=2, workers=8) == 1.0  # one batch's time at least
    assert remaining_seconds([], remaining=5, workers=1) is None
    assert remaining_seconds([FIRST], remaining=0, workers=1) == 0.0


def test_the_progress_line_prints_the_eta_without_compilation():
    stream = io.StringIO()
    progress = RunProgress(21, 0, stream=stream, interval=0.0, workers=1)
    progress.update(1, 4, 0, FIRST)
    assert "ETA 20s (compilation excluded)" in stream.getvalue()


def test_a_batch_task_reports_the_seconds_it_spent_compiling():
    compile_seconds()  # the listener is on from here

    def batch(condition, reps):
        # a function of its own: compiled afresh, not taken from a cache
        jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) * len(reps) + x @ x)(jnp.ones(3)))
        return []

    for timeout in (None, 30.0):
        outcome = run_guarded(batch, lambda c, r, why: [], timeout, {}, [0, 1])
        assert 0 < outcome.compile_seconds <= outcome.seconds


def _show(tmp_path, capsys, *overrides, pilot=None):
    option = [] if pilot is None else ["--pilot", pilot]
    rc = main(["show", *option, f"results_dir={tmp_path / 'results'}", *TINY, *overrides])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_show_pilot_times_compilation_and_fitting_apart_and_writes_nothing(tmp_path, capsys):
    study = tmp_path / "results" / "tiny"
    study.mkdir(parents=True)
    (study / "keep.txt").write_text("the user's")
    rc, out, err = _show(tmp_path, capsys, "executor=synchronous", pilot="2")
    assert rc == 0, err
    assert "pilot: 2 replications per condition on executor synchronous" in out
    assert "compile_s" in out and "per_rep_s" in out and "0/4" in out  # 2 reps × 2 estimators
    compile_line = next(line for line in out.splitlines() if line.startswith("compilation: "))
    fitting_line = next(line for line in out.splitlines() if line.startswith("fitting: "))
    assert "once per condition" in compile_line
    assert "× 6 reps × 2 conditions, divided among 1 worker" in fitting_line
    assert "estimate: about" in out
    assert [p.name for p in study.iterdir()] == ["keep.txt"]
    assert list((tmp_path / "results").iterdir()) == [study]
    # a cluster elsewhere is not started for a pilot: it runs in this process
    slurm = ["executor=slurm", "executor.slurm.maximum_jobs=4", "executor.slurm.cores=2"]
    rc, out, err = _show(tmp_path, capsys, *slurm, pilot="1")
    assert rc == 0, err
    assert "on this process (executor slurm is not started)" in out
    assert "divided among 8 workers" in out
    rc, out, err = _show(tmp_path, capsys, pilot="0")
    assert rc == 2 and "--pilot" in err and ">= 1" in err


def test_show_uses_only_stored_fits_of_the_same_sampler_settings_and_design(
    tmp_path, run_cli, capsys
):
    closed_form = ["study.estimators=[ols_cc]", "executor=synchronous", "study.reps=4"]
    rc, text = run_cli(*TINY, *closed_form, results=tmp_path / "results")
    assert rc == 0, text
    rc, out, err = _show(tmp_path, capsys, *closed_form)
    assert rc == 0, err
    assert "from this study's stored fits (same sampler and model settings) of 2 of 2" in out
    assert "ignored" not in out
    # other sampler settings: their stored fits say nothing of this run's time
    rc, out, err = _show(tmp_path, capsys, *closed_form, "sampler.warmup=500")
    assert rc == 0, err
    assert "from this study's stored fits" not in out
    assert "not known before a run for 2 conditions" in out
    assert "ignored: all 2 stored batches: made with other sampler or model settings" in out
    assert "sampler.warmup: 60 -> 500" in out
    # another size: only the conditions of this design are timed from what is stored
    rc, out, err = _show(tmp_path, capsys, *closed_form, "study.factors.N=[40,80]")
    assert rc == 0, err
    assert "stored fits (same sampler and model settings) of 2 of 4 conditions" in out
    assert "not known before a run for 2 conditions" in out
    rc, out, err = _show(tmp_path, capsys, *closed_form, "study.factors.N=[80]")
    assert rc == 0, err
    assert "ignored: 2 stored batches of conditions not in this design" in out
