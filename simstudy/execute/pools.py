"""Where batches run: a Dask cluster, or this process (synchronous, for debugging).

Both give the runner the same two verbs: ``submit(fn, *args)`` and iteration over finished
futures as they complete (``distributed.as_completed`` for Dask).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from simstudy import XLA_EIGEN_FLAG
from simstudy.config import CLUSTER_EXECUTORS, ExecutorSettings, available_cores


class Handle(Protocol):
    """A submitted task."""

    key: Any

    def result(self) -> Any:
        """The task's value, or raise its exception."""


class Pool(Protocol):
    """What the runner needs from an executor."""

    n_workers: int

    def submit(self, fn: Callable[..., Any], *args: Any) -> Handle:
        """Start ``fn(*args)``."""

    def completed(self) -> Any:
        """An object with ``add(handle)`` that iterates over handles as they finish."""

    def cancel(self, handle: Handle) -> bool:
        """Cancel a submitted task; whether it was cancelled (it will not be yielded)."""

    def recycle(self, worker: str) -> None:
        """Restart a worker whose task hung (a compiled program cannot be interrupted)."""


class _Done:
    _ids = itertools.count()

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.key = next(self._ids)
        self._value: Any = None
        self._error: BaseException | None = None
        try:
            self._value = fn(*args)
        except Exception as exc:
            self._error = exc

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class _Queue:
    def __init__(self) -> None:
        self._items: deque[_Done] = deque()

    def add(self, handle: _Done) -> None:
        self._items.append(handle)

    def __iter__(self) -> Iterator[_Done]:
        while self._items:
            yield self._items.popleft()


class SynchronousPool:
    """Runs each task in this process when it is submitted."""

    n_workers = 1
    dashboard_link = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Done:
        """Run ``fn(*args)`` now."""
        return _Done(fn, args)

    def completed(self) -> _Queue:
        """Finished tasks in submission order."""
        return _Queue()

    def cancel(self, handle: _Done) -> bool:
        """Nothing to cancel: a task has finished when it is submitted."""
        return False

    def recycle(self, worker: str) -> None:
        """A hung fit's thread cannot be stopped in this process; say so, once."""
        if not getattr(self, "_warned", False):
            self._warned = True
            print(
                "[simstudy] a fit ran past executor.fit_timeout; its thread keeps running in "
                "this process (the synchronous executor cannot stop it)",
                flush=True,
            )


class DaskPool:
    """Tasks on a ``distributed`` cluster, each retried on worker loss."""

    def __init__(
        self,
        client: Any,
        n_workers: int,
        retries: int,
        dashboard: bool = True,
        no_worker_timeout: float | None = None,
        coming: Callable[[], bool] | None = None,
        replace: Callable[[], int] | None = None,
    ) -> None:
        """A pool on ``client``'s cluster.

        ``no_worker_timeout``: seconds without a worker alive, and none coming, after which
        iterating over :meth:`completed` raises :class:`~simstudy.execute.watchdog.NoWorkers`
        (None: never). ``coming()``: whether workers are on their way that may take long
        (queued SLURM jobs). ``replace()``: starts workers for those the cluster gave up on and
        returns how many (a local cluster's).
        """
        from simstudy.execute.watchdog import WorkerClock

        self.client = client
        self.n_workers = n_workers
        self.retries = retries
        self.dashboard_link = client.dashboard_link if dashboard else None
        self._clock = WorkerClock(no_worker_timeout)
        self._coming = coming
        self._replace = replace
        self._memory_limit: int | None = None
        #: Whether any worker has been asked (an adaptive cluster may start with none).
        self.memory_known = False
        self.memory_limit()  # remembered now: when a batch is lost its workers may be gone

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` as one task (never cached: ``pure=False``)."""
        return self.client.submit(fn, *args, pure=False, retries=self.retries)

    def completed(self) -> Any:
        """``distributed.as_completed`` over the futures added to it, watched by :meth:`check`."""
        from distributed import as_completed

        from simstudy.execute.watchdog import Watched

        return Watched(as_completed(), self.check)

    def check(self) -> str | None:
        """Why the run cannot go on (no worker for ``no_worker_timeout`` s, none coming), or None.

        Workers the cluster gave up on are replaced first, where the cluster can (local).
        """
        replaced = self._replace() if self._replace is not None else 0
        info = self.client.scheduler_info(n_workers=0)  # the count, not every worker's details
        alive = info.get("n_workers", len(info.get("workers", {})))
        coming = replaced > 0 or (not alive and self._coming is not None and self._coming())
        if not self._clock.expired(alive, coming, time.monotonic()):
            return None
        return (
            f"no worker has been alive for {self._clock.timeout:g} s and none is coming "
            "(executor.no_worker_timeout)"
        )

    def cancel(self, handle: Any) -> bool:
        """Cancel a task that has not finished (a running one's result is dropped)."""
        if handle.done():
            return False
        handle.cancel()
        return True

    def recycle(self, worker: str) -> None:
        """Restart ``worker`` through its nanny, which kills the process and its hung thread."""
        try:
            self.client.restart_workers([worker], timeout=120)
        except Exception as exc:  # a worker that is gone already needs no restart
            print(f"[simstudy] could not restart worker {worker}: {exc}", flush=True)

    def memory_limit(self) -> int | None:
        """Each worker's memory limit in bytes (the smallest seen), or None if unlimited.

        Read from the workers alive now and remembered, since the workers of a batch lost to
        the machine are often all dead (and not yet replaced) when the loss is reported.
        """
        workers = self.client.scheduler_info().get("workers", {})
        limits = [w.get("memory_limit") or 0 for w in workers.values()]
        self.memory_known = self.memory_known or bool(limits)
        if limits and min(limits) > 0:
            seen = min(limits)
            self._memory_limit = min(seen, self._memory_limit or seen)
        return self._memory_limit


#: Where a local cluster's scheduler, nannies, workers and dashboard listen.
LOOPBACK = "127.0.0.1"


#: Environment of worker processes: one thread each, so that workers do not oversubscribe
#: cores. The XLA flag is the one every process that imports simstudy sets (simstudy/__init__).
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": XLA_EIGEN_FLAG,
}


def worker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """:data:`WORKER_ENV` merged into ``base`` (default ``os.environ``): XLA flags appended.

    ``JAX_PLATFORMS`` and ``SIMSTUDY_JAX_CACHE`` are passed on, so that workers use the same
    back end and compilation cache as the driver.
    """
    base = dict(os.environ if base is None else base)
    env = {k: base[k] for k in ("JAX_PLATFORMS", "SIMSTUDY_JAX_CACHE") if k in base}
    env.update({k: v for k, v in WORKER_ENV.items() if k != "XLA_FLAGS"})
    flags = base.get("XLA_FLAGS", "").split()
    ours = WORKER_ENV["XLA_FLAGS"]
    if ours not in flags:
        flags.append(ours)
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def scheduler_routes() -> list[str]:
    """The scheduler's HTTP route modules, as a fresh list without the no-bokeh dashboard page.

    A scheduler with the dashboard on but no bokeh appends its placeholder ``/status`` page to
    the list in Dask's config itself, so every later scheduler of the process would serve it
    too, dashboard off or not. Each cluster gets its own copy; an "on" one adds the page again.
    """
    import dask
    import distributed  # noqa: F401  (importing it puts its defaults into Dask's config)

    routes = dask.config.get("distributed.scheduler.http.routes")
    return [module for module in routes if module != "distributed.http.scheduler.missing_bokeh"]


@contextmanager
def open_pool(settings: ExecutorSettings) -> Iterator[SynchronousPool | DaskPool]:
    """Start the executor a config names, and shut it down afterwards.

    Parameters
    ----------
    settings
        ``local``: a ``distributed.LocalCluster`` with one single-threaded worker process per
        core (or ``n_workers``), each pinned to its core (``pin_cores``, see
        :class:`~simstudy.execute.pinning.PinCores`); ``synchronous``: this process;
        ``slurm``, ``slurm_runner``, ``address``, ``kubernetes``: a Dask cluster elsewhere
        (:func:`simstudy.execute.clusters.open_cluster`). Every way the processes that fit
        keep freed memory for reuse (:mod:`simstudy.execute.malloc`).
    """
    if settings.name == "synchronous":
        from simstudy.execute.malloc import keep_freed_memory

        keep_freed_memory()
        yield SynchronousPool()
        return
    import dask

    routes = {"distributed.scheduler.http.routes": scheduler_routes()}
    if settings.name in CLUSTER_EXECUTORS:  # workers elsewhere: simstudy.execute.clusters
        from simstudy.execute.clusters import open_cluster, workers_coming
        from simstudy.execute.pinning import KeepFreedMemory

        with dask.config.set(routes), open_cluster(settings) as (client, n_workers):
            client.register_plugin(KeepFreedMemory())
            yield DaskPool(
                client,
                n_workers,
                settings.retries,
                settings.dashboard,
                settings.no_worker_timeout,
                coming=workers_coming(settings, client),
            )
        return
    from distributed import Client, LocalCluster

    n_workers = settings.n_workers or available_cores()
    with dask.config.set(routes):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            # Nothing of a local cluster listens beyond this machine. Off means off: no
            # dashboard routes, and the scheduler's health endpoint on a free port, not 8787.
            host=LOOPBACK,
            dashboard_address=f"{LOOPBACK}:8787" if settings.dashboard else f"{LOOPBACK}:0",
            scheduler_kwargs={"dashboard": settings.dashboard},
            worker_dashboard_address=None,
            memory_limit=settings.memory_limit,
            silence_logs=logging.ERROR,
            env=worker_env(),
        )
    client = Client(cluster)
    from simstudy.execute.pinning import IgnoreInterrupts, KeepFreedMemory, QuietPeerLoss
    from simstudy.execute.watchdog import ReplaceGivenUp

    client.register_plugin(KeepFreedMemory())
    client.register_plugin(IgnoreInterrupts())
    client.register_plugin(QuietPeerLoss())
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if settings.pin_cores and len(cores) > 1:
        from simstudy.execute.pinning import PinCores

        client.register_plugin(PinCores(cores))
    try:
        yield DaskPool(
            client,
            n_workers,
            settings.retries,
            settings.dashboard,
            settings.no_worker_timeout,
            replace=ReplaceGivenUp(cluster),
        )
    finally:
        client.close()
        cluster.close()
