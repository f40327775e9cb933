"""A study directory read back: its plan from the manifest, and the conditions it can reach.

``simstudy status``, ``aggregate``, ``replay``, ``simulate`` and ``diagnose`` work on a study
directory rather than on overrides: its ``manifest.json`` holds the validated config it was
run with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simstudy.errors import InputError
from simstudy.runstudy import conditions_of


def beyond_design(study_dir: Path, plan: Any) -> list[str]:
    """Stored conditions and reps outside the current design, one phrase each."""
    from simstudy.design import condition_id

    design = {condition_id(c) for c in conditions_of(plan)}
    out = []
    for cid, (condition, reps) in reachable(study_dir, plan).items():
        if cid not in design:
            levels = ", ".join(f"{k}={v}" for k, v in condition.items())
            out.append(f"condition {cid} ({levels}) reps 0-{reps - 1}")
        elif reps > plan.reps:
            out.append(f"condition {cid} reps {plan.reps}-{reps - 1}")
    return out


def study_plan(study_dir: Path) -> tuple[Any, Any]:
    """The manifest of a study directory and the plan it holds (exit 2 without one)."""
    from simstudy.config import plan_from_dict
    from simstudy.models import model_infos
    from simstudy.store import read_manifest

    manifest = read_manifest(study_dir)
    if manifest is None:
        raise InputError("RESULTS_DIR", str(study_dir), "a study directory with a manifest.json")
    return manifest, plan_from_dict(manifest.config, model_infos())


def reachable(study_dir: Path, plan: Any) -> dict[str, tuple[dict[str, Any], int]]:
    """``condition_id -> (condition, reps)``: the current design's, and every stored one.

    A stored condition or replication outside the current design (its reps or levels were
    lowered) stays reachable by ``status``, ``replay`` and ``simulate``.
    """
    from simstudy.design import condition_id
    from simstudy.store import stored_conditions

    out = {condition_id(c): (c, plan.reps) for c in conditions_of(plan)}
    for cid, (condition, reps) in stored_conditions(study_dir, list(plan.factors)).items():
        if condition_id(condition) != cid:  # factors renamed since: its seeds are not ours
            continue
        current = out.get(cid, (condition, 0))
        out[cid] = (current[0], max(current[1], reps))
    return out


def pick(study_dir: Path, plan: Any, cond: str | None, rep: int | None) -> Any:
    """The reachable conditions, with ``--condition`` and ``--rep`` checked against them."""
    found = reachable(study_dir, plan)
    if cond is not None and cond not in found:
        raise InputError("--condition", cond, "one of " + ", ".join(found))
    if cond is not None and rep is not None and not 0 <= rep < found[cond][1]:
        raise InputError("--rep", rep, f"an integer in [0, {found[cond][1]}) for condition {cond}")
    return found
