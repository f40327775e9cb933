"""Stop a run whose cluster has no worker and none coming, instead of waiting forever.

Dask keeps a task whose workers are all gone waiting for a worker; if none ever comes (a local
cluster whose nannies were dropped after their workers died again and again, an allocation
whose workers are dead, an adaptive cluster that submits no job), the driver would wait in
``as_completed`` until it is killed. :class:`Watched` iterates over finished futures as
``as_completed`` does and raises :class:`NoWorkers` when no worker has been alive for
``executor.no_worker_timeout`` seconds and none is on its way. :class:`ReplaceGivenUp` starts
new workers, a few times, in place of those a local cluster dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from simstudy.design import runs

#: Rounds of new workers a local cluster gets in one run for those its nannies gave up on.
LOCAL_REPLACEMENTS = 3
#: Seconds between two questions to the scheduler while no finished task is waiting.
POLL = 1.0


class NoWorkers(Exception):
    """No worker was alive for ``executor.no_worker_timeout`` seconds and none was coming."""


@dataclass
class WorkerClock:
    """How long the cluster has had no worker alive and none coming.

    Attributes
    ----------
    timeout
        Seconds without a worker after which the run stops (None: never).
    since
        When the current stretch without a worker began (``time.monotonic``), or None.
    """

    timeout: float | None
    since: float | None = None

    def expired(self, alive: int, coming: bool, now: float) -> bool:
        """Whether the run should stop, given the workers ``alive`` now and any ``coming``."""
        if alive or coming:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return self.timeout is not None and now - self.since >= self.timeout


class Watched:
    """``distributed.as_completed`` that raises :class:`NoWorkers` when the workers are gone.

    Parameters
    ----------
    completed
        A ``distributed.as_completed`` (``add``, ``has_ready``, ``is_empty``, ``next``).
    check
        Called about every :data:`POLL` seconds while no finished future is waiting; returns
        why the run cannot go on (then :class:`NoWorkers` is raised), or None.
    """

    def __init__(self, completed: Any, check: Callable[[], str | None]) -> None:
        self._completed = completed
        self._check = check

    def add(self, future: Any) -> None:
        """Watch one more future."""
        self._completed.add(future)

    def __iter__(self) -> Iterator[Any]:
        asked = time.monotonic()
        while True:
            while not self._completed.has_ready():
                if self._completed.is_empty():
                    return
                if time.monotonic() - asked >= POLL:
                    why = self._check()
                    if why is not None:
                        raise NoWorkers(why)
                    asked = time.monotonic()
                time.sleep(0.02)
            yield Patient(next(self._completed), self._check)


class Patient:
    """A finished future whose result is waited for in steps, asking ``check`` between them.

    A result held by a worker that died since is computed again, which with no worker left
    would never happen; ``result()`` then raises :class:`NoWorkers` instead of waiting.
    """

    def __init__(self, future: Any, check: Callable[[], str | None]) -> None:
        self.future = future
        self.key = future.key
        self._check = check

    def result(self) -> Any:
        """The future's value, or raise its exception, or :class:`NoWorkers`."""
        while True:
            try:
                return self.future.result(timeout=POLL)
            except TimeoutError:
                why = self._check()
                if why is not None:
                    raise NoWorkers(why) from None


def _ranges(numbers: Iterable[int]) -> str:
    """``0, 2-5, 9`` for 0, 2, 3, 4, 5, 9."""
    return ", ".join(str(a) if b == a + 1 else f"{a}-{b - 1}" for a, b in runs(numbers))


def batches_left(left: Iterable[tuple[str, int]], most: int = 8) -> str:
    """The batches ``(cond_id, k)`` left, by condition: ``condition a1b2 batches 0-3, 7; ...``.

    At most ``most`` conditions are named; the others are counted.
    """
    by_condition: dict[str, list[int]] = {}
    for cond_id, k in left:
        by_condition.setdefault(cond_id, []).append(k)
    named = [
        f"condition {cid} batch{'es' if len(ks) > 1 else ''} {_ranges(ks)}"
        for cid, ks in sorted(by_condition.items())
    ]
    more = len(named) - most
    return "; ".join(named[:most]) + (f"; and {more} more conditions" if more > 0 else "")


def given_up(cluster: Any, seen: set[Any]) -> list[Any]:
    """Names of a ``SpecCluster``'s workers, among those ``seen`` running, that it dropped.

    A nanny whose worker does not come back within ``distributed.deploy.lost-worker-timeout``
    (killed again and again, or while it starts) is closed and dropped by the cluster, which
    never starts another in its place. A worker not yet ``seen`` may be starting.
    """
    from distributed.core import Status

    gone = (Status.closed, Status.failed)
    return [
        name
        for name in cluster.worker_spec
        if name in seen and (name not in cluster.workers or cluster.workers[name].status in gone)
    ]


class ReplaceGivenUp:
    """Starts new local workers for those the cluster gave up on, ``tries`` rounds at most."""

    def __init__(self, cluster: Any, tries: int = LOCAL_REPLACEMENTS) -> None:
        self.cluster = cluster
        self.tries = tries
        self.seen: set[Any] = set(cluster.workers)

    def __call__(self) -> int:
        """Replace the workers given up on now, while tries are left; how many were."""
        self.seen |= set(self.cluster.workers)
        gone = given_up(self.cluster, self.seen)
        if not gone or self.tries <= 0:
            return 0
        self.tries -= 1
        n = len(self.cluster.worker_spec)
        # New names first (a reused one would be dropped by Dask's timer for the old worker),
        # then the dropped ones out of the spec: the cluster starts the first, closes the others.
        self.cluster.scale(n + len(gone))
        for name in gone:
            del self.cluster.worker_spec[name]
        self.cluster.scale(n)
        print(
            f"[simstudy] {len(gone)} local workers kept dying and were dropped by Dask; "
            f"starting new ones ({self.tries} more such rounds in this run)",
            flush=True,
        )
        return len(gone)
