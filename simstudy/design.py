"""The design grid: crossed factor levels, stable condition ids and replication seeds."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Condition = dict[str, Any]


def condition_id(condition: Mapping[str, Any]) -> str:
    """Stable id of a condition: a hash of its factor names and values only.

    It does not depend on factor order, on the other levels of the grid, or on the study, so
    adding a level to a factor leaves the ids (and results) of existing conditions unchanged.

    Parameters
    ----------
    condition
        Factor name to level.

    Returns
    -------
    str
        12 hexadecimal characters.
    """
    canonical = json.dumps(
        {k: _canonical(v) for k, v in sorted(condition.items())}, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _canonical(value: Any) -> Any:
    # 250 and 250.0 name the same level; keep ints as ints, floats via repr for stability.
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return int(f) if f.is_integer() else repr(f)
    return value


def expand_grid(
    factors: Mapping[str, Sequence[Any]], exclude: Sequence[Mapping[str, Any]] = ()
) -> list[Condition]:
    """Cross the factor levels, dropping combinations that match an ``exclude`` entry.

    Parameters
    ----------
    factors
        Factor name to its levels, in declaration order.
    exclude
        Each mapping drops every condition that agrees with it on all of its keys.

    Returns
    -------
    list of dict
        Conditions in grid order (the last factor varies fastest).
    """
    names = list(factors)
    out = []
    for values in itertools.product(*(factors[n] for n in names)):
        cond = dict(zip(names, values, strict=True))
        if any(all(cond[k] == v for k, v in rule.items()) for rule in exclude):
            continue
        out.append(cond)
    return out


def rep_seed(study_seed: int, cond_id: str, rep: int) -> int:
    """Seed of one replication, a function of (study seed, condition id, rep) only.

    Parameters
    ----------
    study_seed
        The study's seed.
    cond_id
        The condition's id (hexadecimal, from :func:`condition_id`).
    rep
        Replication index within the condition.

    Returns
    -------
    int
        A non-negative 63-bit integer; :func:`seed_words` splits it for JAX.
    """
    cid = int(cond_id, 16)
    entropy = [study_seed & 0xFFFFFFFF, study_seed >> 32, cid & 0xFFFFFFFF, cid >> 32, rep]
    hi, lo = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return ((int(hi) & 0x7FFFFFFF) << 32) | int(lo)


def seed_words(seed: int) -> tuple[int, int]:
    """Split a 63-bit seed into two 32-bit words (high, low), e.g. for a threefry key."""
    return (seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF


def batches(reps: int, batch_size: int) -> list[tuple[int, int, int]]:
    """Split ``range(reps)`` into batches ``(k, start, stop)`` of ``batch_size`` reps."""
    return [
        (k, start, min(start + batch_size, reps))
        for k, start in enumerate(range(0, reps, batch_size))
    ]


def padded_lanes(reps: int, batch_size: int, width: int) -> int:
    """Lanes per condition that fit padding when replications are fitted ``width`` at a time.

    Each batch is cut into groups of ``width`` and its last group is padded to ``width``
    (see :func:`simstudy.engine.replicate.run_batch`), so the padding is wasted sampling.
    """
    if width <= 1:
        return 0
    return sum(-(stop - start) % width for _, start, stop in batches(reps, batch_size))


def runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of integers as ``[first, stop)`` ranges: 0, 2, 3, 4 -> (0, 1), (2, 5)."""
    out: list[tuple[int, int]] = []
    for v in sorted(set(values)):
        if out and out[-1][1] == v:
            out[-1] = (out[-1][0], v + 1)
        else:
            out.append((v, v + 1))
    return out
