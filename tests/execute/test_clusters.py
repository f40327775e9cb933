"""Cluster executors without a cluster: what each is built from, and bad settings exit 2.

The same executors on a real SLURM are in ``test_slurm.py`` (``pytest -m slurm``).
"""

from __future__ import annotations

import shlex
import sys

import pandas as pd
import pytest
from conftest import TINY, numbers, records_of

from simstudy.cli import compose_raw
from simstudy.config import executor_settings, walltime_seconds
from simstudy.errors import InputError
from simstudy.execute import clusters
from simstudy.execute.pools import WORKER_ENV, worker_env


def _settings(*overrides):
    """The executor settings ``simstudy run`` would get from these overrides."""
    return executor_settings(compose_raw(list(overrides))["executor"])


SLURM = [
    "executor=slurm",
    "executor.scheduler_host=10.1.2.3",
    "executor.slurm.cores=4",
    "executor.slurm.memory=16GB",
    "executor.slurm.walltime=02:00:00",
    "executor.slurm.queue=short",
    "executor.slurm.account=proj42",
    "executor.slurm.job_extra_directives=['--qos=normal','--constraint=avx2']",
    "executor.slurm.job_script_prologue=['module load python/3.11']",
    "executor.slurm.interface=ib0",
    "executor.slurm.minimum_jobs=1",
    "executor.slurm.maximum_jobs=8",
]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("30:15", 1815),
        ("01:00:00", 3600),
        ("2-00", 172800),
        ("1-02:30", 95400),
        ("1-00:00:10", 86410),
        ("1h", None),
        ("", None),
        (3600, None),
    ],
)
def test_walltime_in_slurm_formats(text, seconds):
    assert walltime_seconds(text) == seconds


def test_lifetime_ends_before_the_walltime():
    slurm = _settings("executor=slurm").slurm
    # 01:00:00 less a 300 s margin less a 120 s stagger: every worker retires in [51, 55] min
    assert clusters.lifetime(slurm) == 3600 - 300 - 120
    assert clusters.lifetime_args(slurm) == [
        "--lifetime",
        "3180s",
        "--lifetime-stagger",
        "120s",
    ]
    assert clusters.lifetime(slurm) + slurm.lifetime_stagger <= 3600 - slurm.lifetime_margin
    custom = _settings("executor=slurm", "executor.slurm.walltime=1-00:00:00").slurm
    assert clusters.lifetime(custom) == 86400 - 420
    given = _settings("executor=slurm", "executor.slurm.lifetime=90").slurm
    assert clusters.lifetime_args(given)[:2] == ["--lifetime", "90s"]
    assert "--lifetime-restart" not in clusters.lifetime_args(given)


def test_slurm_cluster_kwargs_from_config():
    settings = _settings(*SLURM)
    kwargs = clusters.slurm_cluster_kwargs(settings, env={"XLA_FLAGS": "--xla_dump_to=/x"})
    assert kwargs["cores"] == kwargs["processes"] == 4  # one single-threaded worker per core
    assert kwargs["memory"] == "16GB"
    assert kwargs["walltime"] == "02:00:00"
    assert kwargs["queue"] == "short"
    assert kwargs["account"] == "proj42"
    assert kwargs["job_extra_directives"] == ["--qos=normal", "--constraint=avx2"]
    assert kwargs["interface"] == "ib0"
    assert kwargs["python"] == sys.executable
    assert kwargs["scheduler_options"]["host"] == "10.1.2.3"
    assert kwargs["worker_extra_args"] == ["--lifetime", "6780s", "--lifetime-stagger", "120s"]
    prologue = kwargs["job_script_prologue"]
    assert prologue[0] == "module load python/3.11"  # the user's lines first, then ours
    exports = dict(line.removeprefix("export ").split("=", 1) for line in prologue[1:])
    for key, value in WORKER_ENV.items():
        if key != "XLA_FLAGS":
            assert exports[key] == value
    flags = shlex.split(exports["XLA_FLAGS"])[0].split()
    assert flags == ["--xla_dump_to=/x", WORKER_ENV["XLA_FLAGS"]]
    assert clusters.slurm_adapt_kwargs(settings) == {"minimum_jobs": 1, "maximum_jobs": 8}
    assert clusters.slurm_workers(settings) == 32
    # minimum_jobs null: every job kept to the end, retired ones replaced
    default = _settings("executor=slurm")
    assert clusters.slurm_adapt_kwargs(default) == {"minimum_jobs": 2, "maximum_jobs": 2}
    assert "host" not in clusters.slurm_cluster_kwargs(default)["scheduler_options"]
    assert default.slurm.python is None and default.pin_cores is False


def test_slurm_job_script_as_dask_jobqueue_writes_it(tmp_path):
    """The kwargs are accepted by dask_jobqueue, and its job script says what they mean."""
    settings = _settings(*SLURM, "executor.scheduler_host=127.0.0.1", "executor.dashboard=false")
    kwargs = clusters.slurm_cluster_kwargs(settings)
    kwargs["log_directory"] = str(tmp_path / "logs")
    cls = clusters.import_target(settings.slurm._target_, "executor.slurm._target_")
    assert issubclass(cls, clusters.dask_jobqueue.SLURMCluster)
    cluster = cls(**kwargs)  # a scheduler here; no job is submitted before adapt or scale
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in (
        "#SBATCH -p short",
        "#SBATCH -A proj42",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=15G",
        "#SBATCH -t 02:00:00",
        "#SBATCH --qos=normal",
        "#SBATCH --constraint=avx2",
        "module load python/3.11",
        "export OMP_NUM_THREADS=1",
    ):
        assert line in script.splitlines(), (line, script)
    command = script.splitlines()[-1]
    assert command.startswith(f"{sys.executable} -m distributed.cli.dask_worker tcp://127.0.0.1:")
    for part in ("--nthreads 1", "--nworkers 4", "--lifetime 6780s", "--lifetime-stagger 120s"):
        assert part in command
    assert "--lifetime-restart" not in command
    assert "--interface ib0" in command


def test_slurm_runner_kwargs():
    settings = _settings("executor=slurm_runner", "executor.runner.interface=ib0")
    kwargs = clusters.slurm_runner_kwargs(settings)
    assert kwargs["scheduler_file"] == "scheduler-{job_id}.json"
    assert kwargs["worker_options"] == {"nthreads": 1, "interface": "ib0"}
    assert kwargs["scheduler_options"]["interface"] == "ib0"
    assert settings.runner._target_ == "dask_jobqueue.slurm.SLURMRunner"
    cls = clusters.import_target(settings.runner._target_, "executor.runner._target_")
    assert cls.__name__ == "SLURMRunner"


def test_kubernetes_spec():
    settings = _settings(
        "executor=kubernetes",
        "executor.kubernetes.image=registry.example.org/simstudy:0.1.0",
        "executor.n_workers=6",
        "executor.kubernetes.cpu=1",
        "executor.kubernetes.memory=3Gi",
        "+executor.kubernetes.env.SIMSTUDY_JAX_CACHE=/cache/jax",
        "+executor.kubernetes.env.OMP_NUM_THREADS=8",
    )
    spec = clusters.kubernetes_cluster_spec(settings)
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["name"] == "simstudy"
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == 6
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example.org/simstudy:0.1.0"
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "3Gi"},
        "limits": {"cpu": "1", "memory": "3Gi"},
    }
    assert container["args"][:3] == ["dask-worker", "--nthreads", "1"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SIMSTUDY_JAX_CACHE"] == "/cache/jax"  # the user's
    assert env["OMP_NUM_THREADS"] == "1"  # a local worker's wins
    assert env["XLA_FLAGS"] == WORKER_ENV["XLA_FLAGS"]
    assert env == {**env, **worker_env({"SIMSTUDY_JAX_CACHE": "/cache/jax"})}
    (scheduler,) = spec["spec"]["scheduler"]["spec"]["containers"]
    assert scheduler["image"] == container["image"]
    kwargs = clusters.kubernetes_kwargs(settings)
    assert kwargs["custom_cluster_spec"] == spec and kwargs["shutdown_on_close"] is True


def test_worker_problems_name_what_differs():
    good = {"version": "0.1.0", "env": dict(WORKER_ENV)}
    assert clusters.worker_problems({"tcp://a:1": good}, {"tcp://a:1": 1}, "0.1.0") == []
    bad = {"version": "0.0.9", "env": {**WORKER_ENV, "OMP_NUM_THREADS": None}}
    problems = clusters.worker_problems({"tcp://b:1": bad}, {"tcp://b:1": 4}, "0.1.0")
    assert len(problems) == 3
    assert any("simstudy 0.0.9" in p for p in problems)
    assert any("OMP_NUM_THREADS" in p for p in problems)
    assert any("4 threads" in p for p in problems)


def test_run_in_allocation_runs_the_study_outside_srun(monkeypatch):
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)

    def compose(overrides):
        raise AssertionError("nothing is composed outside an srun step")

    assert clusters.run_in_allocation(["executor=slurm_runner"], lambda o: 7, compose) == 7
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "0")
    # another executor inside an srun step: the study runs on every rank, as before
    assert clusters.run_in_allocation([], lambda o: 3, compose_raw) == 3


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("dask_jobqueue.SLURMCluster", True),
        ("simstudy.execute.clusters.SLURMCluster", True),
        ("distributed.LocalCluster", True),
        ("dask_kubernetes.operator.KubeCluster", True),
        ("os.system", False),
        ("subprocess.Popen", False),
        ("builtins.eval", False),
        ("simstudy_evil.x", False),
        ("dask_jobqueue.SLURMCluster; rm -rf /", False),
        (42, False),
    ],
)
def test_only_whitelisted_targets(path, ok):
    from simstudy.config import check_targets

    raw = {"executor": {"slurm": {"_target_": path}}}
    if ok:
        check_targets(raw)
    else:
        with pytest.raises(InputError, match=r"executor\.slurm\._target_ = "):
            check_targets(raw)


BAD = [
    (["executor=slurm", "executor.slurm._target_=os.system"], "executor.slurm._target_ = "),
    (["+model._target_=subprocess.call"], "model._target_ = 'subprocess.call'"),
    (
        ["executor=kubernetes", "executor.kubernetes._target_=builtins.eval"],
        "executor.kubernetes._target_ = 'builtins.eval'",
    ),
    (["executor=slurm", "executor.slurm.walltime=1h"], "executor.slurm.walltime = '1h'"),
    (["executor=slurm", "executor.slurm.walltime=00:05:00"], "executor.slurm.walltime"),
    (["executor=slurm", "executor.slurm.memory=lots"], "executor.slurm.memory = 'lots'"),
    (["executor=slurm", "executor.slurm.cores=0"], "executor.slurm.cores = 0"),
    (["executor=slurm", "executor.slurm.minimum_jobs=5"], "executor.slurm.minimum_jobs = 5"),
    (["executor=slurm", "executor.slurm.lifetime=-5"], "executor.slurm.lifetime = -5"),
    (["executor=slurm", "executor.slurm.lifetime_margin=x"], "executor.slurm.lifetime_margin"),
    (["executor=slurm", "+executor.slurm.partition=short"], "executor.slurm.partition"),
    (["executor=slurm", "executor.n_workers=8"], "executor.n_workers = 8"),
    (["executor=slurm", "executor.fit_timeout=0"], "executor.fit_timeout = 0"),
    (["executor.no_worker_timeout=-1"], "executor.no_worker_timeout = -1"),
    (["executor.no_worker_timeout=soon"], "executor.no_worker_timeout = 'soon'"),
    (["+executor.slurm.cores=2"], "executor.slurm = "),  # a slurm section for executor=local
    (["+executor.scheduler_host=10.0.0.1"], "executor.scheduler_host = '10.0.0.1'"),
    (["executor=address"], "executor.address = None"),
    (["executor=address", "executor.address=localhost"], "executor.address = 'localhost'"),
    (["executor=kubernetes"], "executor.kubernetes.image = None"),
    (
        ["executor=kubernetes", "executor.kubernetes.image=x", "executor.kubernetes.memory=4 GB"],
        "executor.kubernetes.memory = '4 GB'",
    ),
    (
        ["executor=kubernetes", "executor.kubernetes.image=x", "executor.kubernetes.name=My_Study"],
        "executor.kubernetes.name = 'My_Study'",
    ),
    (["executor=slurm_runner", "executor.runner.scheduler_file=null"], "scheduler_file = None"),
]


@pytest.mark.parametrize(("overrides", "expected"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_cluster_settings_exit_2_naming_the_field(run_cli, tmp_path, overrides, expected):
    rc, out = run_cli(*overrides)
    assert rc == 2, out
    assert expected in out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()


def test_every_executor_config_has_fit_timeout_and_no_worker_timeout():
    from pathlib import Path

    from simstudy.config import EXECUTORS, read_config_file

    conf = Path(clusters.__file__).resolve().parents[2] / "conf" / "executor"
    assert sorted(p.stem for p in conf.glob("*.yaml")) == sorted(EXECUTORS)
    for path in conf.glob("*.yaml"):
        config = read_config_file(path)
        assert config["fit_timeout"] == 600, path.name
        if path.stem != "synchronous":  # no workers to wait for
            assert config["no_worker_timeout"] == 120, path.name


#: Closed-form estimator only: these runs compile nothing.
OLS = [*TINY, "study.estimators=[ols_cc]", "executor.batch_size=3"]


def test_kubernetes_without_dask_kubernetes_exits_2(run_cli):
    try:
        import dask_kubernetes  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("dask_kubernetes is installed here")
    rc, out = run_cli(*OLS, "executor=kubernetes", "executor.kubernetes.image=simstudy:0.1.0")
    assert rc == 2, out
    assert "executor.kubernetes._target_ = 'dask_kubernetes.operator.KubeCluster'" in out
    assert "pip install dask-kubernetes" in out


def test_slurm_runner_outside_srun_exits_2(run_cli, monkeypatch):
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    rc, out = run_cli(*OLS, "executor=slurm_runner")
    assert rc == 2, out
    assert "executor.name = 'slurm_runner'" in out and "srun -n K" in out
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    rc, out = run_cli(*OLS, "executor=slurm_runner")
    assert rc == 2, out
    assert "at least 3 tasks" in out


def test_slurm_without_slurm_exits_2(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch, no sinfo
    rc, out = run_cli(*OLS, "executor=slurm")
    assert rc == 2, out
    assert "executor.name = 'slurm'" in out and "sbatch" in out


def test_address_runs_on_a_running_scheduler_and_warns_of_other_workers(run_cli, tmp_path):
    """A scheduler started elsewhere: its workers run the study, the numbers are the same;
    a worker with two threads and four OpenMP threads is named in a warning."""
    import logging

    from distributed import LocalCluster

    rc, out = run_cli(*OLS, "executor=synchronous", results=tmp_path / "here")
    assert rc == 0, out
    expected = records_of(tmp_path / "here" / "tiny")
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        env={"OMP_NUM_THREADS": "4"},
    ) as cluster:
        address = cluster.scheduler_address
        rc, out = run_cli(
            *OLS, "executor=address", f"executor.address={address}", results=tmp_path / "there"
        )
        assert rc == 0, out
        assert "warning:" in out and "2 threads" in out and "OMP_NUM_THREADS" in out
        assert len(cluster.workers) == 1  # the scheduler's workers are left running
    got = records_of(tmp_path / "there" / "tiny")
    pd.testing.assert_frame_equal(numbers(got), numbers(expected))


def test_pin_within_job_pins_worker_i_to_the_jobs_i_th_core(monkeypatch):
    from types import SimpleNamespace

    from simstudy.execute import pinning

    pinned = []
    monkeypatch.setattr(pinning.os, "sched_getaffinity", lambda pid: {4, 5, 6, 7}, raising=False)
    monkeypatch.setattr(pinning, "pin_process", lambda *cores: pinned.append(cores))
    plugin = pinning.PinWithinJob()
    for name in ("SLURMCluster-3-0", "SLURMCluster-3-2", "SLURMCluster-3-9", "SLURMCluster"):
        plugin.setup(SimpleNamespace(name=name))
    assert pinned == [(4,), (6,)]  # index 9 has no core of its own; no index: left alone
