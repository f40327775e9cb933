"""Dask clusters whose workers run elsewhere: SLURM jobs, one allocation, a scheduler, pods.

Pure functions turn :class:`~simstudy.config.ExecutorSettings` into what each cluster is
built from (constructor arguments, job options, a Kubernetes resource), so that they are
tested without SLURM or Kubernetes; :func:`open_cluster` starts the one a config names and
gives :func:`~simstudy.execute.pools.open_pool` a connected client.

Every worker gets the environment of a local worker (:func:`~simstudy.execute.pools.worker_env`:
one thread, the same XLA flags, the driver's ``JAX_PLATFORMS`` and ``SIMSTUDY_JAX_CACHE``) and
runs one task at a time, so that a replication's numbers are the same bits as on the local
executor (on the same kind of CPU: XLA compiles for the CPU it runs on).

``executor=slurm`` (``conf/executor/slurm.yaml``)
    This process runs the scheduler; ``dask_jobqueue`` submits jobs of ``slurm.cores``
    single-threaded workers and keeps between ``minimum_jobs`` and ``maximum_jobs`` of them
    (``cluster.adapt``). Each worker retires :func:`lifetime` seconds after it starts (Dask's
    ``--lifetime``, spread by ``--lifetime-stagger``), before its job's walltime: the batch it
    was running goes back to the scheduler and runs elsewhere, its job ends and adapt submits
    a new one.
``executor=slurm_runner`` (``conf/executor/slurm_runner.yaml``)
    ``srun -n K simstudy run ... executor=slurm_runner``: every rank runs the same command;
    ``dask_jobqueue.slurm.SLURMRunner`` makes rank 0 the scheduler, rank 1 the driver (the
    study) and ranks 2 to K-1 workers (:func:`run_in_allocation`).
``executor=address``
    A running Dask scheduler (``executor.address=tcp://host:port``); its workers as they are.
``executor=kubernetes``
    A ``dask_kubernetes`` ``KubeCluster`` from :func:`kubernetes_cluster_spec`;
    ``dask_kubernetes`` is imported only when one is started.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dask
from dask.utils import parse_timedelta

from simstudy.execute.signals import keep_sigint

with keep_sigint():  # dask_jobqueue's runner module sets SIGINT to sys.exit() on import
    import dask_jobqueue

from simstudy.config import (
    ExecutorSettings,
    SlurmSettings,
    check_targets,
    executor_settings,
    walltime_seconds,
)
from simstudy.errors import InputError

#: The rank of an ``srun`` step that runs the study under ``executor=slurm_runner``
#: (``SLURMRunner``: rank 0 is the scheduler, rank 1 the client, the others workers).
CLIENT_RANK = 1
#: Seconds the driver waits for the workers of an allocation or a scheduler to connect.
CONNECT_TIMEOUT = 120.0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def import_target(path: str, field: str) -> Any:
    """The class a ``_target_`` names, after checking it against :data:`TARGET_PREFIXES`."""
    check_targets({"_target_": path}, field.rsplit("._target_", 1)[0])
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        package = (exc.name or module).split(".")[0]
        hint = {"dask_kubernetes": "pip install dask-kubernetes"}.get(
            package, f"pip install {package.replace('_', '-')}"
        )
        raise InputError(
            field, path, f"an installed class: {exc.name} is not installed ({hint})"
        ) from None
    except AttributeError:
        raise InputError(field, path, f"a class of module {module}") from None


# --- SLURM jobs (executor=slurm) -------------------------------------------------------------


def lifetime(slurm: SlurmSettings) -> float:
    """Seconds a worker runs before it retires: ``walltime - margin - stagger``, or as given.

    Dask spreads each worker's lifetime uniformly by ± ``lifetime_stagger``, so every worker
    retires between ``walltime - margin - 2 stagger`` and ``walltime - margin``: at least
    ``lifetime_margin`` seconds before SLURM would kill its job, time enough to hand back its
    batch and close. The workers of a job retire at different times, so they do not all hand
    back their batches at once; the job ends when its last worker has.
    """
    if slurm.lifetime is not None:
        return slurm.lifetime
    total = walltime_seconds(slurm.walltime)
    assert total is not None  # validated in simstudy.config
    return float(total - slurm.lifetime_margin - slurm.lifetime_stagger)


def lifetime_args(slurm: SlurmSettings) -> list[str]:
    """The ``dask worker`` options that retire a worker before its walltime (no restart)."""
    return [
        "--lifetime",
        f"{lifetime(slurm):g}s",
        "--lifetime-stagger",
        f"{slurm.lifetime_stagger:g}s",
    ]


def worker_prologue(env: Mapping[str, str] | None = None) -> list[str]:
    """Shell lines that give a job's workers a local worker's environment (``export ...``)."""
    from simstudy.execute.pools import worker_env

    values = worker_env(None if env is None else dict(env))
    return [f"export {k}={shlex.quote(v)}" for k, v in sorted(values.items())]


def slurm_cluster_kwargs(
    settings: ExecutorSettings, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for ``executor=slurm``.

    A job of ``slurm.cores`` cores runs as many single-threaded worker processes, each with
    ``slurm.memory / cores``; the job script exports :func:`worker_prologue` after the lines of
    ``slurm.job_script_prologue`` (so a ``module load`` or ``source`` cannot change them).
    """
    slurm = settings.slurm or SlurmSettings()
    scheduler: dict[str, Any] = {}
    if settings.scheduler_host is not None:
        scheduler["host"] = settings.scheduler_host
    if settings.dashboard:
        scheduler["dashboard_address"] = ":8787"
    else:  # the health endpoint that remains serves nobody elsewhere: this machine only
        scheduler["dashboard"] = False
        scheduler["dashboard_address"] = "127.0.0.1:0"
    return {
        "cores": slurm.cores,
        "processes": slurm.cores,
        "memory": slurm.memory,
        "walltime": slurm.walltime,
        "queue": slurm.queue,
        "account": slurm.account,
        "job_name": "simstudy-worker",
        "job_extra_directives": list(slurm.job_extra_directives),
        "job_script_prologue": [*slurm.job_script_prologue, *worker_prologue(env)],
        "interface": slurm.interface,
        "python": slurm.python or sys.executable,
        "worker_extra_args": lifetime_args(slurm),
        "log_directory": slurm.log_directory,
        "local_directory": slurm.local_directory,
        "scheduler_options": scheduler,
    }


def slurm_adapt_kwargs(settings: ExecutorSettings) -> dict[str, int]:
    """``cluster.adapt(...)``: ``minimum_jobs`` (null: ``maximum_jobs``) to ``maximum_jobs``."""
    slurm = settings.slurm or SlurmSettings()
    minimum = slurm.maximum_jobs if slurm.minimum_jobs is None else slurm.minimum_jobs
    return {"minimum_jobs": minimum, "maximum_jobs": slurm.maximum_jobs}


def slurm_workers(settings: ExecutorSettings) -> int:
    """Workers of ``executor=slurm`` at most: ``maximum_jobs × cores``."""
    slurm = settings.slurm or SlurmSettings()
    return slurm.maximum_jobs * slurm.cores


class SLURMCluster(dask_jobqueue.SLURMCluster):
    """``dask_jobqueue.SLURMCluster`` that also replaces jobs of several workers.

    ``distributed``'s ``SpecCluster`` forgets a job whose worker left (retired at its
    ``--lifetime``) by the worker's name, so adapt starts a new one; a job of several worker
    processes has names ``<job>-0``, ``<job>-1``, ..., none of which is the job's, and such a
    job was never forgotten: adapt kept counting it, and the cluster shrank with each
    walltime. Here a job is forgotten once its last worker has left.
    """

    def _job_of(self, worker_name: Any) -> Any:
        for job, spec in self.worker_spec.items():
            for suffix in spec.get("group", ()):
                if str(job) + suffix == str(worker_name):
                    return job
        return None

    def _update_worker_status(self, op: str, msg: Any) -> None:
        if op == "remove":
            name = self.scheduler_info["workers"][msg]["name"]
            job = self._job_of(name)
            if job is not None:

                def forget() -> None:
                    left = [
                        d["name"]
                        for d in self.scheduler_info["workers"].values()
                        if self._job_of(d["name"]) == job
                    ]
                    if job in self.workers and not left:
                        self._futures.add(asyncio.ensure_future(self.workers[job].close()))
                        del self.workers[job]

                delay = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout"))
                asyncio.get_running_loop().call_later(delay, forget)
        super()._update_worker_status(op, msg)


def check_slurm(settings: ExecutorSettings) -> None:
    """SLURM answers here and has the partition asked for; else :class:`InputError`."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise InputError(
            "executor.name",
            settings.name,
            "a machine with SLURM's commands (sbatch, sinfo not found on PATH): a login node",
        )
    proc = subprocess.run(
        ["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise InputError(
            "executor.name",
            settings.name,
            f"a machine where SLURM answers (sinfo: {proc.stderr.strip() or proc.returncode})",
        )
    queue = settings.slurm.queue if settings.slurm else None
    partitions = set(proc.stdout.split())
    if queue is not None and queue not in partitions:
        raise InputError(
            "executor.slurm.queue", queue, "a partition of this cluster: " + ", ".join(partitions)
        )


def _wait_for_first_worker(client: Any, what: str, timeout: float | None = None) -> None:
    """Block until a worker has connected, saying so once if it takes a while."""
    started, said = time.monotonic(), False
    while not client.scheduler_info(n_workers=-1).get("workers"):
        waited = time.monotonic() - started
        if timeout is not None and waited > timeout:
            raise InputError("executor.name", what, f"workers that connect (none in {timeout:g} s)")
        if not said and waited > 5:
            _say(f"[simstudy] waiting for the first worker ({what})")
            said = True
        time.sleep(0.5)


@contextmanager
def _start_slurm(settings: ExecutorSettings) -> Iterator[tuple[Any, int]]:
    from distributed import Client

    check_slurm(settings)
    slurm = settings.slurm or SlurmSettings()
    cls = import_target(slurm._target_, "executor.slurm._target_")
    cluster = cls(**slurm_cluster_kwargs(settings))
    client = None
    try:
        cluster.adapt(**slurm_adapt_kwargs(settings))
        client = Client(cluster)
        if settings.pin_cores and slurm.cores > 1:
            from simstudy.execute.pinning import PinWithinJob

            client.register_plugin(PinWithinJob())
        _say(
            f"[simstudy] SLURM: up to {slurm.maximum_jobs} jobs of {slurm.cores} workers "
            f"(walltime {slurm.walltime}; a worker retires after {lifetime(slurm):g} ± "
            f"{slurm.lifetime_stagger:g} s); worker logs in {slurm.log_directory or '.'}"
        )
        _wait_for_first_worker(client, "a SLURM job; squeue shows where it is")
        yield client, slurm_workers(settings)
    finally:
        if client is not None:
            client.close()
        cluster.close()


# --- the study inside one allocation (executor=slurm_runner) ---------------------------------


def slurm_runner_kwargs(settings: ExecutorSettings) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.slurm.SLURMRunner`` (JSON-able).

    Workers are single-threaded (``nthreads=1``); the scheduler's dashboard follows
    ``executor.dashboard``; ``scheduler_file`` must be on a file system every node sees.
    """
    runner = settings.runner
    assert runner is not None
    # off means off: the scheduler's health endpoint on a free port of its node only, not 8787
    scheduler: dict[str, Any] = {
        "dashboard": settings.dashboard,
        "dashboard_address": ":8787" if settings.dashboard else "127.0.0.1:0",
    }
    worker: dict[str, Any] = {"nthreads": 1}
    if runner.interface is not None:
        scheduler["interface"] = runner.interface
        worker["interface"] = runner.interface
    if runner.local_directory is not None:
        worker["local_directory"] = runner.local_directory
    return {
        "scheduler_file": runner.scheduler_file,
        "scheduler_options": scheduler,
        "worker_options": worker,
    }


#: Whether this process's study closed its allocation's scheduler (see _start_runner).
_RUNNER = {"closed": False}


def _scheduler_file(settings: ExecutorSettings) -> Path:
    assert settings.runner is not None
    job = os.environ.get("SLURM_JOB_ID", "0")
    return Path(settings.runner.scheduler_file.format(job_id=job))


def _check_allocation(settings: ExecutorSettings) -> int:
    """The number of tasks of this ``srun`` step; :class:`InputError` unless inside one."""
    if "SLURM_STEP_ID" not in os.environ or "SLURM_PROCID" not in os.environ:
        raise InputError(
            "executor.name",
            settings.name,
            "a command started by srun inside an allocation: srun -n K simstudy run ... "
            "executor=slurm_runner (rank 0 the scheduler, 1 the study, the others workers)",
        )
    tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if tasks < 3:
        raise InputError(
            "executor.name",
            settings.name,
            f"at least 3 tasks (srun -n 3 or more; this step has {tasks}): the scheduler, "
            "the study and one worker or more",
        )
    return tasks


def run_in_allocation(
    overrides: Sequence[str],
    run: Callable[[Sequence[str]], int],
    compose: Callable[[Sequence[str]], Mapping[str, Any]],
) -> int:
    """``run(overrides)``, or this rank's part of ``srun -n K simstudy run ... slurm_runner``.

    Outside an ``srun`` step, or with another executor, it is ``run(overrides)``. Inside one
    with ``executor=slurm_runner``, rank 1 runs the study, and every other rank replaces itself
    (``exec``) by a fresh Python that runs its ``SLURMRunner`` role: rank 0 the scheduler, the
    others single-threaded workers with a local worker's environment; they exit when the study
    closes the scheduler. Should the study end without starting it (nothing to run, bad
    input), rank 1 shuts the scheduler down, so that no rank waits for the walltime.
    """
    if "SLURM_STEP_ID" not in os.environ:
        return run(overrides)
    raw = compose(overrides).get("executor")
    if not isinstance(raw, Mapping) or raw.get("name") != "slurm_runner":
        return run(overrides)
    settings = executor_settings(raw)
    _check_allocation(settings)
    rank = int(os.environ["SLURM_PROCID"])
    if rank != CLIENT_RANK:
        _exec_rank(settings)  # does not return
    _RUNNER["closed"] = False
    try:
        return run(overrides)
    finally:
        if not _RUNNER["closed"]:  # the study never opened the pool (which closes it)
            _shutdown_scheduler(settings)


def _exec_rank(settings: ExecutorSettings) -> None:  # pragma: no cover - replaces the process
    from simstudy.execute.pools import worker_env

    env = {**os.environ, **worker_env()}
    payload = json.dumps(asdict(settings))
    argv = [sys.executable, "-m", "simstudy.execute.clusters", "runner-rank", payload]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _serve_rank(payload: str) -> int:  # pragma: no cover - runs in a rank of an srun step
    """The scheduler's or a worker's role of ``SLURMRunner`` (blocks until the study ends)."""
    from simstudy.execute.malloc import keep_freed_memory

    settings = executor_settings(json.loads(payload))
    assert settings.runner is not None
    keep_freed_memory()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the driver reports progress
    cls = import_target(settings.runner._target_, "executor.runner._target_")
    # The runner ends a scheduler or worker rank by sending it SIGINT, for the handler its
    # module installs (sys.exit()); importing it here kept the driver's (keep_sigint).
    signal.signal(signal.SIGINT, lambda *_: sys.exit())
    cls(**slurm_runner_kwargs(settings))  # the scheduler or a worker until the study closes it
    return 0


def _shutdown_scheduler(settings: ExecutorSettings) -> None:
    """Close the allocation's scheduler (and so its workers) if the study left it running."""
    path = _scheduler_file(settings)
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not path.exists():
        return
    from distributed import Client

    try:
        with Client(scheduler_file=str(path), timeout="10s") as client:
            client.shutdown()
    except Exception:  # closed already: nothing to do
        pass
    path.unlink(missing_ok=True)


@contextmanager
def _start_runner(settings: ExecutorSettings) -> Iterator[tuple[Any, int]]:
    from distributed import Client

    tasks = _check_allocation(settings)
    if int(os.environ["SLURM_PROCID"]) != CLIENT_RANK:
        raise InputError(
            "executor.name",
            settings.name,
            "simstudy run started by srun (the scheduler and worker ranks must not run the "
            "study; run `simstudy run`, not `python -c ...`)",
        )
    assert settings.runner is not None
    cls = import_target(settings.runner._target_, "executor.runner._target_")
    runner = cls(**slurm_runner_kwargs(settings))
    client = None
    try:
        client = Client(runner)
        n_workers = getattr(runner, "n_workers", tasks - 2)
        _wait_for_first_worker(client, "a rank of this srun step", timeout=CONNECT_TIMEOUT)
        yield client, n_workers
    finally:
        if client is not None:
            client.close()
        runner.close()  # terminates the scheduler, which closes the workers
        _RUNNER["closed"] = True
        _scheduler_file(settings).unlink(missing_ok=True)


# --- a running scheduler (executor=address) --------------------------------------------------


def _worker_report() -> dict[str, Any]:
    """What the driver checks of a worker it did not start (runs in the worker)."""
    import simstudy
    from simstudy.execute.pools import WORKER_ENV

    return {
        "version": simstudy.__version__,
        "env": {k: os.environ.get(k) for k in WORKER_ENV},
    }


def worker_problems(
    reports: Mapping[str, Mapping[str, Any]], nthreads: Mapping[str, int], version: str
) -> list[str]:
    """How workers differ from local ones in what a replication's numbers depend on."""
    from simstudy.execute.pools import WORKER_ENV

    problems = []
    for address, report in sorted(reports.items()):
        if report.get("version") != version:
            problems.append(f"{address} runs simstudy {report.get('version')}, not {version}")
        env = report.get("env", {})
        for key, value in WORKER_ENV.items():
            have = env.get(key) or ""
            if (value not in have.split()) if key == "XLA_FLAGS" else (have != value):
                problems.append(f"{address} has {key}={have!r}, local workers {value!r}")
        if nthreads.get(address, 1) != 1:
            problems.append(f"{address} has {nthreads[address]} threads, local workers 1")
    return problems


@contextmanager
def _start_address(settings: ExecutorSettings) -> Iterator[tuple[Any, int]]:
    from distributed import Client

    import simstudy

    try:
        client = Client(settings.address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise InputError(
            "executor.address",
            settings.address,
            f"the address of a running Dask scheduler (could not connect: {exc})",
        ) from None
    try:
        _wait_for_first_worker(client, f"a worker of {settings.address}", timeout=CONNECT_TIMEOUT)
        info = client.scheduler_info(n_workers=-1)["workers"]
        reports = client.run(_worker_report)
        nthreads = {a: w.get("nthreads", 1) for a, w in info.items()}
        for problem in worker_problems(reports, nthreads, simstudy.__version__):
            _say(f"[simstudy] warning: {problem}; numbers may differ from the local executor's")
        yield client, len(info)
    finally:
        client.close()


# --- Kubernetes (executor=kubernetes) --------------------------------------------------------


def kubernetes_cluster_spec(settings: ExecutorSettings) -> dict[str, Any]:
    """A ``DaskCluster`` resource of the Dask operator, as ``KubeCluster`` would build one.

    ``executor.n_workers`` worker pods of one single-threaded worker each (``--nthreads 1``,
    ``cpu`` and ``memory`` requested and limited), with a local worker's environment on top
    of ``kubernetes.env``; the scheduler pod runs the same image. Plain data: no
    ``dask_kubernetes`` needed to build it.
    """
    from simstudy.execute.pools import worker_env

    k8s = settings.kubernetes
    assert k8s is not None
    values = {**k8s.env, **worker_env(dict(k8s.env))}
    env = [{"name": k, "value": v} for k, v in sorted(values.items())]
    quantities = {"cpu": k8s.cpu, "memory": k8s.memory}
    resources = {"requests": dict(quantities), "limits": dict(quantities)}
    worker_args = [
        "dask-worker",
        "--nthreads",
        "1",
        "--name",
        "$(DASK_WORKER_NAME)",
        "--dashboard",
        "--dashboard-address",
        "8788",
    ]
    scheduler_args = ["dask-scheduler", "--host", "0.0.0.0"]
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": k8s.name},
        "spec": {
            "idleTimeout": 0,
            "worker": {
                "replicas": settings.n_workers,
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "image": k8s.image,
                            "args": worker_args,
                            "env": env,
                            "resources": resources,
                            "ports": [
                                {
                                    "name": "http-dashboard",
                                    "containerPort": 8788,
                                    "protocol": "TCP",
                                }
                            ],
                        }
                    ]
                },
            },
            "scheduler": {
                "spec": {
                    "containers": [
                        {
                            "name": "scheduler",
                            "image": k8s.image,
                            "args": scheduler_args,
                            "env": env,
                            "resources": resources,
                            "ports": [
                                {"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
                                {
                                    "name": "http-dashboard",
                                    "containerPort": 8787,
                                    "protocol": "TCP",
                                },
                            ],
                            "readinessProbe": {
                                "httpGet": {"port": "http-dashboard", "path": "/health"},
                                "initialDelaySeconds": 0,
                                "periodSeconds": 1,
                                "timeoutSeconds": 300,
                            },
                        }
                    ]
                },
                "service": {
                    "type": k8s.scheduler_service_type,
                    "selector": {
                        "dask.org/cluster-name": k8s.name,
                        "dask.org/component": "scheduler",
                    },
                    "ports": [
                        {
                            "name": "tcp-comm",
                            "protocol": "TCP",
                            "port": 8786,
                            "targetPort": "tcp-comm",
                        },
                        {
                            "name": "http-dashboard",
                            "protocol": "TCP",
                            "port": 8787,
                            "targetPort": "http-dashboard",
                        },
                    ],
                },
            },
        },
    }


def kubernetes_kwargs(settings: ExecutorSettings) -> dict[str, Any]:
    """Keyword arguments of ``dask_kubernetes.operator.KubeCluster`` for the spec above."""
    k8s = settings.kubernetes
    assert k8s is not None
    kwargs: dict[str, Any] = {
        "custom_cluster_spec": kubernetes_cluster_spec(settings),
        "shutdown_on_close": True,
    }
    if k8s.namespace is not None:
        kwargs["namespace"] = k8s.namespace
    return kwargs


@contextmanager
def _start_kubernetes(settings: ExecutorSettings) -> Iterator[tuple[Any, int]]:
    from distributed import Client

    k8s = settings.kubernetes
    assert k8s is not None and settings.n_workers is not None
    cls = import_target(k8s._target_, "executor.kubernetes._target_")
    cluster = cls(**kubernetes_kwargs(settings))
    client = None
    try:
        client = Client(cluster)
        _wait_for_first_worker(client, f"a pod of DaskCluster {k8s.name}")
        yield client, settings.n_workers
    finally:
        if client is not None:
            client.close()
        cluster.close()


def _jobs_submitted(cluster: Any) -> bool:
    """Whether a job of an adaptive SLURM cluster is queued or running (its workers may come)."""
    return bool(getattr(cluster, "workers", None))


def workers_coming(settings: ExecutorSettings, client: Any) -> Callable[[], bool] | None:
    """For a run with no worker alive: whether workers are on their way, if the cluster knows.

    ``executor=slurm``: a job submitted and not ended, which may wait long in SLURM's queue
    (the run then waits however long); None for the others, whose workers either are there or
    come back soon (``executor.no_worker_timeout`` bounds the wait).
    """
    if settings.name != "slurm":
        return None
    cluster = getattr(client, "cluster", None)
    return lambda: _jobs_submitted(cluster)


_STARTS = {
    "slurm": _start_slurm,
    "slurm_runner": _start_runner,
    "address": _start_address,
    "kubernetes": _start_kubernetes,
}


@contextmanager
def open_cluster(settings: ExecutorSettings) -> Iterator[tuple[Any, int]]:
    """Start (or connect to) the cluster of a cluster executor: ``(client, n_workers)``.

    ``n_workers`` is what the runner sizes its window by: the most workers the cluster will
    have (SLURM: ``maximum_jobs × cores``), or those it has (a scheduler's, an allocation's).
    Closed afterwards, except a scheduler that ``executor=address`` connected to.
    """
    with _STARTS[settings.name](settings) as (client, n_workers):
        yield client, n_workers


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - see run_in_allocation
    """``python -m simstudy.execute.clusters runner-rank SETTINGS``: a rank's runner role."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "runner-rank":
        print("usage: python -m simstudy.execute.clusters runner-rank SETTINGS_JSON")
        return 2
    return _serve_rank(args[1])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
