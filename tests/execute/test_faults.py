"""Faults a study must survive, the cheap checks (default tier).

The same properties on real worker processes, signals and clusters are in
``test_faults_live.py`` (``pytest -m faults``).
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pyarrow as pa
import pytest
from conftest import TINY, numbers, records_of

from simstudy.cli import main
from simstudy.errors import InputError
from simstudy.execute.runner import Outcome, StopRule, is_infrastructure, run_guarded, run_tasks
from simstudy.store import (
    RunLock,
    batch_path,
    batch_state,
    check_batch_file,
    read_manifest,
    replication_schema,
    write_batch,
)

#: Closed-form estimator only: these runs compile nothing.
OLS = [*TINY, "executor=synchronous", "executor.batch_size=2", "study.estimators=[ols_cc]"]


def _record(rep, **kw):
    row = {
        "study": "s",
        "condition_id": "c",
        "N": 10,
        "rep": rep,
        "seed": 1,
        "estimator": "e",
        "parameter": "b",
        "truth": 0.5,
        "estimate": 0.4,
        "se": 0.1,
        "lower": 0.2,
        "upper": 0.6,
        "ess_bulk": float("nan"),
        "ess_tail": float("nan"),
        "rhat": float("nan"),
        "n_divergent": 0,
        "status": "ok",
        "error": "",
        "seconds": 0.1,
    }
    return {**row, **kw}


def _corrupt(path, offset=None):
    """Overwrite 8 bytes in the middle of a file, in place (as a bad disk or copy does)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at : at + 8] = b"\x7f" * 8
    path.write_bytes(bytes(data))


def test_a_batch_carries_its_reps_config_hash_and_checksum(tmp_path):
    path = batch_path(tmp_path, "c", 0)
    write_batch(path, [_record(0), _record(1)], replication_schema({"N": "int"}), (0, 2), "abc")
    state = batch_state(path)
    assert (state.reps, state.config_hash, state.problem) == ((0, 2), "abc", "")
    assert path.with_name(f".{path.name}.sha256").read_text().strip()
    assert sorted(p.name for p in path.parent.iterdir()) == [f".{path.name}.sha256", path.name]
    assert len(pd.read_parquet(path.parent)) == 2  # readers of the directory skip the checksum
    _corrupt(path)
    assert "checksum" in batch_state(path).problem and batch_state(path).reps is None
    with pytest.raises(InputError, match=re.escape(str(path))):
        check_batch_file(path)


def test_a_truncated_batch_is_named(tmp_path):
    path = batch_path(tmp_path, "c", 0)
    write_batch(path, [_record(0)], replication_schema({"N": "int"}), (0, 1), "abc")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match=r"batch-00000\.parquet"):
        check_batch_file(path)


def test_corrupted_batch_is_reported_refused_by_aggregate_and_recomputed(run_cli, tmp_path, capsys):
    assert run_cli(*OLS)[0] == 0
    study = tmp_path / "results" / "tiny"
    before = records_of(study)
    victim = sorted((study / "replications").rglob("batch-*.parquet"))[1]
    _corrupt(victim)
    assert main(["status", str(study)]) == 0
    out = capsys.readouterr().out
    assert "to recompute" in out and victim.name in out and "checksum" in out
    assert main(["aggregate", str(study)]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "Traceback" not in err
    rc, out = run_cli(*OLS)
    assert rc == 0, out
    assert "recomputing" in out and "1 batches to run" in out
    pd.testing.assert_frame_equal(numbers(records_of(study)), numbers(before))


def test_without_a_manifest_batches_of_another_seed_are_refused(run_cli, tmp_path):
    assert run_cli(*OLS)[0] == 0
    study = tmp_path / "results" / "tiny"
    (study / "manifest.json").unlink()
    files = {p: p.read_bytes() for p in study.rglob("batch-*")}
    rc, out = run_cli(*OLS, "study.seed=99")
    assert rc == 2
    assert "another" in out and "fresh=true" in out and "Traceback" not in out
    assert {p: p.read_bytes() for p in study.rglob("batch-*")} == files
    assert not (study / "manifest.json").exists()
    # the same config adopts them again, and the manifest says so
    rc, out = run_cli(*OLS)
    assert rc == 0 and "0 batches to run" in out
    assert read_manifest(study).numbers["seed"] != 99


def test_a_corrupt_manifest_is_named_by_status_run_and_aggregate(run_cli, tmp_path, capsys):
    assert run_cli(*OLS)[0] == 0
    study = tmp_path / "results" / "tiny"
    (study / "manifest.json").write_text('{"study": "tiny", "config_')
    for argv in (["status", str(study)], ["aggregate", str(study)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "manifest.json" in err and "Traceback" not in err
    rc, out = run_cli(*OLS)
    assert rc == 2 and "manifest.json" in out


def test_nan_estimates_marked_ok_are_failures_in_aggregate(tmp_path, capsys):
    rows = [
        {
            "rep": r,
            "estimator": "e",
            "parameter": "b",
            "truth": 0.0,
            "se": 1.0,
            "status": "ok",
            "estimate": float("nan") if r % 4 == 0 else 0.1 * (r % 3),
        }
        for r in range(40)
    ]
    csv = tmp_path / "other.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert main(["aggregate", str(csv)]) == 0
    summary = pd.read_parquet(tmp_path / "other-summary.parquet").set_index("measure")
    assert summary.loc["bias", "n_reps"] == 30
    assert summary.loc["failure_rate", "value"] == pytest.approx(10 / 40)


def test_lowering_reps_or_dropping_a_level_summarises_the_current_design(run_cli, tmp_path):
    assert run_cli(*OLS, "study.reps=6")[0] == 0
    study = tmp_path / "results" / "tiny"
    rc, out = run_cli(*OLS, "study.reps=4", "study.factors.mechanism=[MAR]")
    assert rc == 0, out
    summary = pd.read_parquet(study / "summary.parquet")
    assert set(summary["mechanism"]) == {"MAR"}
    assert set(summary.loc[summary["measure"] == "bias", "n_reps"]) == {4}
    assert len(records_of(study)) == 2 * 6 * 4  # nothing stored is deleted
    assert main(["aggregate", str(study)]) == 0  # aggregate summarises the same design
    again = pd.read_parquet(study / "summary.parquet")
    assert set(again["mechanism"]) == {"MAR"}
    assert set(again.loc[again["measure"] == "bias", "n_reps"]) == {4}


def test_an_early_stop_is_remembered_and_retried_only_when_asked(run_cli, tmp_path):
    args = [
        *OLS,
        "study.reps=20",
        "study.factors.N=[7,40]",
        "study.factors.missing_rate=[0.5]",
        "study.factors.mechanism=[MCAR]",
        "study.min_reps_for_stop=4",
        "study.max_failure_rate=0.01",
    ]
    rc, out = run_cli(*args)
    assert rc == 1 and "stopped early" in out
    study = tmp_path / "results" / "tiny"
    stopped = json.loads((study / "stopped.json").read_text())
    (cid,) = stopped
    reps_of = records_of(study).groupby("condition_id")["rep"].nunique()
    assert reps_of[cid] == stopped[cid]["reps_run"] < 20
    rc, out = run_cli(*args)
    assert rc == 1
    assert "stopped by an earlier run and is not run" in out and "retry_stopped=true" in out
    assert "0 batches were not run" not in out
    assert records_of(study).groupby("condition_id")["rep"].nunique()[cid] == reps_of[cid]
    rc, out = run_cli(*args, "retry_stopped=true")
    assert rc == 1 and "stopped early" in out  # same seeds, same failures: stops again


def test_the_manifest_keeps_a_history_of_runs(run_cli, tmp_path):
    assert run_cli(*OLS, "study.reps=4")[0] == 0
    assert run_cli(*OLS, "study.reps=6")[0] == 0
    runs = read_manifest(tmp_path / "results" / "tiny").runs
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert [r["reps"] for r in runs] == [4, 6]
    assert runs[1]["batches_written"] == 2  # one batch per condition grew from 4 to 6 reps


def test_the_lock_is_never_empty_and_a_takeover_is_said(tmp_path):
    lock = RunLock(tmp_path)
    with lock:
        owner = json.loads(lock.path.read_text())
        assert owner["pid"] == os.getpid()
        with pytest.raises(InputError, match="held by"):
            RunLock(tmp_path).acquire()
    assert not lock.path.exists() and not list(tmp_path.iterdir())
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.path.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    second = RunLock(tmp_path)
    with second:
        assert str(dead.pid) in second.taken_over


def test_a_full_disk_is_a_message_and_damages_nothing(run_cli, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        args = [*OLS, "executor.batch_size=1", "study.reps=200", "study.factors.mechanism=[MAR]"]
        rc, out = run_cli(*args, results=disk)
        assert rc == 2, out
        assert "free space" in out and "Traceback" not in out
        files = sorted((disk / "tiny" / "replications").rglob("batch-*.parquet"))
        assert files and all(not batch_state(f).problem for f in files)
        assert not list((disk / "tiny").rglob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_batch_past_its_time_limit_is_failed_rows_with_the_reason():
    def slow(condition, reps):
        time.sleep(5)
        return []

    def failed(condition, reps, why):
        return [{"rep": r, "error": why} for r in reps]

    started = time.monotonic()
    outcome = run_guarded(slow, failed, 0.2, {"N": 1}, [0, 1])
    assert time.monotonic() - started < 2
    assert [r["rep"] for r in outcome.records] == [0, 1]
    assert "fit_timeout" in outcome.records[0]["error"]
    assert outcome.stuck_worker == "this process"
    assert run_guarded(lambda c, r: [{"rep": 0}], failed, 5.0, {}, [0]) == Outcome([{"rep": 0}])


def test_only_machine_errors_count_as_infrastructure():
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    for exc in (
        KilledWorker("k", None, 3),
        CommClosedError(),
        FutureCancelledError("k", "x"),
        MemoryError(),
        ConnectionResetError(),
    ):
        assert is_infrastructure(exc), exc
    for exc in (ValueError(), KeyError("x"), pa.ArrowInvalid("x"), ZeroDivisionError()):
        assert not is_infrastructure(exc), exc


def test_a_lost_batch_is_resubmitted_then_left_unwritten(tmp_path):
    """Runner logic on the synchronous pool: a batch whose task dies is never a failed row."""
    from distributed.scheduler import KilledWorker

    from simstudy.execute.pools import SynchronousPool
    from simstudy.execute.runner import plan_tasks

    deaths = {"n": 0}

    def run(condition, reps):
        if condition["N"] == 1:
            deaths["n"] += 1
            raise KilledWorker("task", None, 3)
        return [_record(r, N=condition["N"]) for r in reps]

    tasks = plan_tasks(tmp_path, [{"N": 1}, {"N": 2}], reps=2, batch_size=2, config_hash="h").todo
    report = run_tasks(
        SynchronousPool(),
        tasks,
        study_dir=tmp_path,
        schema=replication_schema({"N": "int"}),
        run_fn=run,
        fail_fn=lambda condition, reps, error: pytest.fail("a lost batch became rows"),
        stop_rule=StopRule(0.5, 1),
        n_estimators=1,
        config_hash="h",
        resubmits=2,
    )
    assert deaths["n"] == 3  # first try and two resubmissions
    assert len(report.lost) == 1 and report.batches_written == 1
    assert sorted(p.parent.name for p in tmp_path.rglob("batch-*.parquet")) == [
        "condition=" + tasks[1].cond_id
    ]


def test_dashboard_off_serves_no_dashboard():
    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool

    # A dashboard-on cluster first, as an earlier test of the same process may have opened:
    # without bokeh, Dask used to leave its placeholder page in every later scheduler.
    with open_pool(ExecutorSettings(n_workers=1, dashboard=True, pin_cores=False)):
        pass
    with open_pool(ExecutorSettings(n_workers=1, dashboard=False, pin_cores=False)) as pool:
        assert pool.dashboard_link is None
        port = pool.client.cluster.scheduler.http_server.port
        assert port != 8787
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5)


def test_the_memory_limit_is_still_known_when_every_worker_is_gone():
    """A batch lost to the machine is reported with the workers' memory limit, though its
    workers are often all dead (and not yet replaced) at that moment."""
    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool

    settings = ExecutorSettings(n_workers=1, memory_limit="200MB", dashboard=False)
    with open_pool(settings) as pool:
        pool.client.cluster.scale(0)
        deadline = time.monotonic() + 60
        while pool.client.scheduler_info().get("workers"):
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.1)
        assert pool.memory_limit() == 200_000_000 and pool.memory_known


def test_the_scheduler_routes_need_no_earlier_import_of_distributed():
    code = (
        "from simstudy.execute.pools import scheduler_routes; "
        "assert 'distributed.http.scheduler.missing_bokeh' not in scheduler_routes()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _non_loopback_ipv4() -> str | None:
    import socket

    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


@pytest.mark.parametrize("dashboard", [True, False])
def test_a_local_cluster_listens_on_this_machine_only(dashboard):
    import psutil

    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool

    settings = ExecutorSettings(n_workers=1, dashboard=dashboard, pin_cores=False)
    with open_pool(settings) as pool:
        cluster = pool.client.cluster
        scheduler = cluster.scheduler
        http_port = scheduler.http_server.port
        ours = {scheduler.port, http_port} | {n.port for n in cluster.workers.values()}
        listening = {
            c.laddr.port: c.laddr.ip
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ours
        }
        assert {scheduler.port, http_port} <= set(listening)  # the check sees what it checks
        assert set(listening.values()) == {"127.0.0.1"}, listening
        workers = pool.client.scheduler_info(n_workers=-1)["workers"]
        assert workers and all(a.startswith("tcp://127.0.0.1:") for a in workers)
        if not dashboard:
            ip = _non_loopback_ipv4()
            if ip is None:
                pytest.skip("this machine has no non-loopback IPv4 address to try /info on")
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(f"http://{ip}:{http_port}/info", timeout=5)


def _run_in_time(pool, tasks, study_dir, limit=60):
    """run_tasks of trivial batches on a real pool, failing (not hanging) past ``limit`` s."""
    import threading

    box = {}

    def run(condition, reps):
        return [_record(r, N=condition["N"]) for r in reps]

    def target():
        box["report"] = run_tasks(
            pool,
            tasks,
            study_dir=study_dir,
            schema=replication_schema({"N": "int"}),
            run_fn=run,
            fail_fn=lambda condition, reps, error: pytest.fail(error),
            stop_rule=StopRule(0.5, 1),
            n_estimators=1,
            config_hash="h",
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the run was still waiting after {limit} s"
    return box["report"]


def test_with_no_worker_and_none_coming_the_run_stops_naming_the_batches_left(tmp_path):
    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool
    from simstudy.execute.runner import plan_tasks

    tasks = plan_tasks(tmp_path, [{"N": 1}, {"N": 2}], reps=4, batch_size=2, config_hash="h")
    settings = ExecutorSettings(n_workers=1, dashboard=False, pin_cores=False, no_worker_timeout=2)
    with open_pool(settings) as pool:
        pool.client.cluster.scale(0)  # gone on purpose: nothing to replace
        deadline = time.monotonic() + 60
        while pool.client.scheduler_info(n_workers=0)["n_workers"]:
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.1)
        started = time.monotonic()
        report = _run_in_time(pool, tasks.todo, tmp_path)
    assert time.monotonic() - started < 30
    assert "no worker has been alive for 2 s" in report.no_workers
    assert report.left == sorted((t.cond_id, t.k) for t in tasks.todo)
    assert report.batches_written == 0 and not list(tmp_path.rglob("batch-*.parquet"))


def test_a_local_worker_whose_nanny_gave_up_is_replaced(tmp_path):
    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool
    from simstudy.execute.runner import plan_tasks
    from simstudy.execute.watchdog import given_up

    tasks = plan_tasks(tmp_path, [{"N": 1}], reps=2, batch_size=1, config_hash="h").todo
    settings = ExecutorSettings(n_workers=1, dashboard=False, pin_cores=False)
    with open_pool(settings) as pool:
        cluster = pool.client.cluster
        (nanny,) = cluster.workers.values()
        cluster.sync(nanny.close)  # as Dask closes a nanny whose worker keeps dying
        assert given_up(cluster, {nanny.name}) == [nanny.name]
        report = _run_in_time(pool, tasks, tmp_path)
        assert nanny.name not in cluster.worker_spec and len(cluster.workers) == 1
    assert report.batches_written == 2 and not report.no_workers


def test_the_batches_left_are_named_by_condition_in_ranges():
    from simstudy.execute.watchdog import batches_left

    left = [("b2", 0), ("a1", 3), ("a1", 0), ("a1", 1), ("a1", 2), ("a1", 7)]
    assert batches_left(left) == "condition a1 batches 0-3, 7; condition b2 batch 0"
    many = [(f"c{i}", 0) for i in range(10)]
    assert batches_left(many, most=8).endswith("condition c7 batch 0; and 2 more conditions")


def test_a_result_lost_with_the_last_worker_stops_the_wait_for_it():
    """A finished task whose worker died is computed again, which with no worker left never
    happens: fetching its result says so instead of waiting forever."""
    import threading

    from simstudy.config import ExecutorSettings
    from simstudy.execute.pools import open_pool
    from simstudy.execute.watchdog import NoWorkers

    settings = ExecutorSettings(n_workers=1, dashboard=False, pin_cores=False, no_worker_timeout=2)
    with open_pool(settings) as pool:
        completed = pool.completed()
        completed.add(pool.submit(int, "7"))
        handle = next(iter(completed))  # finished, its result on the worker
        pool.client.cluster.scale(0)
        deadline = time.monotonic() + 60
        while pool.client.scheduler_info(n_workers=0)["n_workers"]:
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.1)
        box = {}

        def fetch():
            try:
                handle.result()
            except Exception as exc:
                box["error"] = exc

        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "still waiting for a result no worker will compute"
    assert isinstance(box["error"], NoWorkers), box
    assert "no worker has been alive for 2 s" in str(box["error"])
