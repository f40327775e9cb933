"""Is the non-centred PyMC CFA's failure (docs/pymc_cfa.md) a matter of where chains start?

Usage::

    .venv/bin/python docs/scripts/pymc_cfa_starts.py

Fits replications 0 and 1 of study cfa_compare with ``pymc_cfa`` (``simstudy check``) twice:
on ChEES with every chain started from Stan's uniform box (-2, 2) without the Pathfinder step,
and on NUTS (which starts from the box), printing each fit's largest R-hat and the factor
variances' posterior means (true 0.49). Several minutes per variant on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "pymc_cfa"
VARIANCES = ("visual~~visual", "textual~~textual", "speed~~speed")


def check(*overrides: str) -> str:
    """``simstudy check pymc_cfa`` of the study, its printed table."""
    from simstudy.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--config-dir", str(EXAMPLE), "check", "pymc_cfa", "study=cfa_compare", *overrides])
    return out.getvalue()


def report(label: str, text: str) -> None:
    """Each replication's largest R-hat and factor variances."""
    for rep in ("0", "1"):
        rows = [line.split() for line in text.splitlines()]
        mine = [r for r in rows if r[:2] == ["rep", rep]]
        rhat = max(float(r[-1]) for r in mine)
        variances = {r[2]: float(r[3]) for r in mine if r[2] in VARIANCES}
        print(f"{label}: rep {rep}: largest R-hat {rhat:.2f}; factor variances {variances}")


def main() -> None:
    """Run both variants."""
    from simstudy.engine import chees

    pathfinder = chees.pathfinder_start
    chees.pathfinder_start = lambda key, logdensity, position: position  # the box start
    try:
        report("ChEES, box starts", check())
    finally:
        chees.pathfinder_start = pathfinder
    report("NUTS", check("sampler=nuts"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
