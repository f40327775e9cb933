"""Where batches run: a Dask cluster, or this process (synchronous, for debugging).

Both give the runner the same two verbs: ``submit(fn, *args)`` and iteration over finished
futures as they complete (``distributed.as_completed`` for Dask).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from simstudy.config import ExecutorSettings


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


class DaskPool:
    """Tasks on a ``distributed`` cluster, each retried on worker loss."""

    def __init__(self, client: Any, n_workers: int, retries: int) -> None:
        self.client = client
        self.n_workers = n_workers
        self.retries = retries
        self.dashboard_link = client.dashboard_link

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` as one task (never cached: ``pure=False``)."""
        return self.client.submit(fn, *args, pure=False, retries=self.retries)

    def completed(self) -> Any:
        """``distributed.as_completed`` over the futures added to it."""
        from distributed import as_completed

        return as_completed()


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity, e.g. under SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


#: Environment of worker processes: one thread each, so that workers do not oversubscribe cores.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
}


@contextmanager
def open_pool(settings: ExecutorSettings) -> Iterator[SynchronousPool | DaskPool]:
    """Start the executor a config names, and shut it down afterwards.

    Parameters
    ----------
    settings
        ``local``: a ``distributed.LocalCluster`` with one single-threaded worker process per
        core (or ``n_workers``), each pinned to its core (``pin_cores``, see
        :class:`~simstudy.execute.pinning.PinCores`); ``synchronous``: this process. Either
        way the processes that fit keep freed memory for reuse
        (:mod:`simstudy.execute.malloc`).
    """
    if settings.name == "synchronous":
        from simstudy.execute.malloc import keep_freed_memory

        keep_freed_memory()
        yield SynchronousPool()
        return
    from distributed import Client, LocalCluster

    n_workers = settings.n_workers or available_cores()
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":8787" if settings.dashboard else None,
        silence_logs=logging.ERROR,
        env={**WORKER_ENV, **{k: os.environ[k] for k in ("JAX_PLATFORMS",) if k in os.environ}},
    )
    client = Client(cluster)
    from simstudy.execute.pinning import KeepFreedMemory

    client.register_plugin(KeepFreedMemory())
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if settings.pin_cores and len(cores) > 1:
        from simstudy.execute.pinning import PinCores

        client.register_plugin(PinCores(cores))
    try:
        yield DaskPool(client, n_workers, settings.retries)
    finally:
        client.close()
        cluster.close()
