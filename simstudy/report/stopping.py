"""How many replications each condition ran, and why it stopped there.

From ``precision.json`` (a study with ``study.target``) and ``stopped.json`` (conditions the
failure rule stopped early), both written by ``simstudy run``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simstudy.report.document import Block, Heading, Paragraph, Table
from simstudy.store import STOPPED, read_stopped

PRECISION = "precision.json"


def read_stopping(study_dir: Path) -> dict[str, Any]:
    """``{"target": ..., "conditions": {id: {...}}, "stopped": {id: {...}}}`` (parts absent: {})."""
    study_dir = Path(study_dir)
    out: dict[str, Any] = {"target": None, "conditions": {}, "stopped": {}}
    path = study_dir / PRECISION
    if path.exists():
        try:
            raw = json.loads(path.read_text())
            out["target"], out["conditions"] = raw.get("target"), dict(raw.get("conditions", {}))
        except (OSError, ValueError, AttributeError):
            out["conditions"] = {}
    if (study_dir / STOPPED).exists():
        out["stopped"] = read_stopped(study_dir)
    return out


def stopping_blocks(stopping: Mapping[str, Any] | None) -> list[Block]:
    """A table of replications per condition and why they stopped; nothing if all ran."""
    if not stopping or not (stopping.get("conditions") or stopping.get("stopped")):
        return []
    blocks: list[Block] = [Heading(2, "Replications per condition")]
    target = stopping.get("target")
    if target:
        which = ", ".join(
            f"{k} {v}" for k, v in target.items() if k in ("parameters", "estimators") and v
        )
        blocks.append(
            Paragraph(
                f"Replications were added in batches until the MCSE of {target['measure']} was "
                f"at most {target['mcse']:g} ({which or 'every estimand and estimator'}; at "
                f"least {target['min_reps']} replications), with study.reps as the cap. A "
                "replication's numbers are those it has in a run of fixed size."
            )
        )
    rows = []
    for cid, entry in stopping.get("conditions", {}).items():
        condition = ", ".join(f"{k}={v}" for k, v in entry.get("condition", {}).items())
        reason = "target reached" if entry.get("reached") else "not reached"
        rows.append((cid, condition, str(entry.get("reps", "–")), reason, entry.get("why", "")))
    for cid, entry in stopping.get("stopped", {}).items():
        rows.append(
            (cid, "", str(entry.get("reps_run", "–")), "stopped early", entry.get("reason", ""))
        )
    blocks.append(
        Table(
            "Replications per condition, and why they stopped",
            ("condition_id", "condition", "reps", "stopped by", "why"),
            tuple(rows),
            numeric=frozenset({"reps"}),
        )
    )
    return blocks
