"""The ETA of a run: the remaining batches' time, compilation left out.

A batch that compiled its programs took far longer than the batches after it; an ETA from wall
time alone counts that compilation into every remaining batch. Each batch task measures the
seconds its worker spent compiling (JAX's monitoring events), and the ETA leaves them out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Records = list[dict[str, Any]]


@dataclass(frozen=True)
class BatchTime:
    """Seconds one batch took.

    Attributes
    ----------
    wall
        The batch task's wall time on its worker, compilation included.
    fit
        Its fits' own seconds, as its records report them (compilation excluded).
    compile
        Seconds its worker spent compiling programs (or loading them from the persistent
        cache) while it ran: see :func:`compile_seconds`.
    """

    wall: float
    fit: float
    compile: float = 0.0


#: JAX's monitoring events whose durations make up compiling a program: tracing, lowering,
#: XLA's compile or a load from the persistent compilation cache (the load's own event,
#: ``cache_retrieval_time_sec``, is timed inside the backend's: counting both double-counts a hit).
COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)
_compiled: list[float] = []


def _on_event(event: str, duration: float, **kwargs: Any) -> None:
    if event in COMPILE_EVENTS:
        _compiled[0] += duration


def compile_seconds() -> float:
    """Seconds this process has spent compiling JAX programs since it first asked.

    The difference of two calls is the compilation between them (a listener on JAX's
    monitoring events, registered on the first call).
    """
    if not _compiled:
        from jax import monitoring

        _compiled.append(0.0)
        monitoring.register_event_duration_secs_listener(_on_event)
    return _compiled[0]


def batch_fit_seconds(records: Records) -> float:
    """Seconds of fitting in a batch's records: one ``seconds`` per replication × estimator."""
    per_fit: dict[tuple[int, str], float] = {}
    for r in records:
        seconds = r.get("seconds")
        if seconds is not None and math.isfinite(seconds):
            per_fit[(r["rep"], r["estimator"])] = float(seconds)
    return sum(per_fit.values())


def remaining_seconds(seen: Sequence[BatchTime], remaining: int, workers: int) -> float | None:
    """Seconds left for ``remaining`` batches on ``workers``, compilation left out.

    A batch costs its wall time less its compilation (at least its fits' own time): so the
    first batches, which compile, count only for what every batch does. None before any
    batch is timed.
    """
    if remaining <= 0:
        return 0.0
    timed = [b for b in seen if math.isfinite(b.wall) and math.isfinite(b.fit)]
    if not timed:
        return None
    per_batch = sum(max(b.wall - b.compile, b.fit) for b in timed) / len(timed)
    return per_batch * max(remaining / max(workers, 1), 1.0)
