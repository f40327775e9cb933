"""Worker plugins of a local Dask cluster: one core per worker, freed memory kept, quiet logs."""

from __future__ import annotations

import logging
import os
from typing import Any

from distributed import WorkerPlugin


def pin_process(*cores: int) -> bool:
    """Restrict every thread of this process to ``cores`` (threads started later inherit it).

    Returns whether it could (Linux only). ``os.sched_setaffinity`` takes a thread id, so each
    thread in ``/proc/self/task`` is pinned, not only the caller.
    """
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        return False  # pragma: no cover - not on Linux
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), set(cores))
        except (ProcessLookupError, PermissionError):  # a thread that has just ended
            continue
    return True


class PinCores(WorkerPlugin):
    """A Dask worker plugin: worker ``i`` of a local cluster runs on the ``i``-th of ``cores``.

    Each worker process runs one task at a time, but JAX starts about 15 threads in it and
    XLA's CPU runtime runs independent operations on them; unpinned, two workers on two cores
    get in each other's way (benchmarks/results/pin_workers.md). Also re-applied to a worker
    that a nanny restarts.
    """

    name = "simstudy-pin-cores"

    def __init__(self, cores: list[int]) -> None:
        self.cores = cores

    def setup(self, worker: Any) -> None:
        """Pin this worker's process (called in the worker when the plugin is registered)."""
        index = int(worker.name) if str(worker.name).isdigit() else 0
        pin_process(self.cores[index % len(self.cores)])


class PinWithinJob(WorkerPlugin):
    """Worker ``<job>-i`` of a cluster job runs on the ``i``-th core its job was given.

    For ``executor=slurm`` with ``pin_cores``: the cores are the worker's CPU affinity when
    the plugin is set up, which is its job's cores where SLURM binds jobs to cores
    (``TaskPlugin=task/affinity`` or ``task/cgroup``). A worker that sees fewer cores than its
    index, or a name without an index, is left as it is.
    """

    name = "simstudy-pin-within-job"

    def setup(self, worker: Any) -> None:
        """Pin this worker's process to its core of the job (called in the worker)."""
        _, _, index = str(worker.name).rpartition("-")
        if not hasattr(os, "sched_getaffinity") or not index.isdigit():
            return
        cores = sorted(os.sched_getaffinity(0))
        if int(index) < len(cores) and len(cores) > 1:
            pin_process(cores[int(index)])


class KeepFreedMemory(WorkerPlugin):
    """Applies :func:`~simstudy.execute.malloc.keep_freed_memory` in each worker process.

    A worker plugin lives here, not in :mod:`simstudy.execute.malloc`, so that the synchronous
    executor can set its own process without importing ``distributed``.
    """

    name = "simstudy-keep-freed-memory"

    def setup(self, worker: Any) -> None:
        """Called in the worker when the plugin is registered (and after a nanny restart)."""
        from simstudy.execute.malloc import keep_freed_memory

        keep_freed_memory()


class IgnoreInterrupts(WorkerPlugin):
    """Workers ignore SIGINT, which Ctrl-C sends to the whole process group.

    The driver, not each worker, decides what happens: it shuts them down and says how to
    resume, instead of every worker printing its own traceback.
    """

    name = "simstudy-ignore-interrupts"

    def setup(self, worker: Any) -> None:
        """Called in the worker's main thread when the plugin is registered (and on restart)."""
        import signal

        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # pragma: no cover - not the main thread: nothing to do
            pass


#: Worker log messages of a connection that closed, logged at ERROR with a traceback.
_LOST = (
    "Worker stream died during communication",  # a peer went away while it fetched data
    "Failed to communicate with scheduler during heartbeat",  # the cluster is closing
)


class _NotPeerLoss(logging.Filter):
    """Drops the worker's report of a peer or scheduler whose connection closed.

    Dask logs that at ERROR with a traceback (``CommClosedError``), then handles it itself
    (the data is fetched elsewhere or recomputed; a worker whose scheduler is gone closes): a
    peer restarted after ``fit_timeout`` is expected, so is a worker restarted while the
    cluster closes, and their tracebacks on the driver's terminal say nothing to act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        lost = str(record.msg).startswith(_LOST)
        return not (lost and isinstance(exc, OSError))


class QuietPeerLoss(WorkerPlugin):
    """Workers of a local cluster do not print a traceback for a peer that went away."""

    name = "simstudy-quiet-peer-loss"

    def setup(self, worker: Any) -> None:
        """Called in the worker when the plugin is registered (and after a nanny restart)."""
        log = logging.getLogger("distributed.worker")
        if not any(isinstance(f, _NotPeerLoss) for f in log.filters):
            log.addFilter(_NotPeerLoss())
