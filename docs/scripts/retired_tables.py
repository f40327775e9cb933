"""A study's tables from a retired hand-written family against its spec model, every measure.

Usage (the default study, before and after its family was retired)::

    git worktree add --detach /tmp/old <commit with the hand-written family>
    (cd /tmp/old && PYTHONPATH=/tmp/old .venv/bin/simstudy run results_dir=/tmp/rm/old)
    .venv/bin/simstudy run results_dir=/tmp/rm/spec
    .venv/bin/python docs/scripts/retired_tables.py --a /tmp/rm/old/missing_x \
        --b /tmp/rm/spec/missing_x --out docs/regression_missing_spec.md

For every estimator both studies ran, condition, estimand and measure with an MCSE (bias,
coverage, empirical and model SE, RMSE, width ...), the two values and their difference in
units of ``sqrt(mcse_a^2 + mcse_b^2)``; ``|z| <= 2`` is "agrees". Whether the two simulators
drew the same data sets is checked on a closed-form estimator's estimates (equal per
replication if they did): when they did not, the data sets are independent and ``z`` is exact.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from engine_study_table import SUMMARY_COLUMNS, _md

from simstudy.store import read_manifest, read_replications

#: Summary rows that are not performance measures of the estimates.
NOT_COMPARED = ("truth", "failure_rate")


def _summary(study: Path) -> pd.DataFrame:
    s = pd.read_parquet(study / "summary.parquet")
    return s[~s.measure.isin(NOT_COMPARED) & s.mcse.notna() & s.value.notna()]


def same_data(a: Path, b: Path, factors: list[str]) -> str:
    """Whether the two studies fitted the same data sets, judged on a closed-form estimator."""
    ra, rb = read_replications(a), read_replications(b)
    closed = sorted(set(ra.loc[ra.se.notna() & ra.ess_bulk.isna(), "estimator"]))
    closed = [e for e in closed if e in set(rb.estimator)]
    if not closed:
        return "not checked (no closed-form estimator in both studies)"
    keys = [*factors, "rep", "parameter"]
    pick = [*keys, "estimate"]
    pair = ra.loc[ra.estimator == closed[0], pick].merge(
        rb.loc[rb.estimator == closed[0], pick], on=keys, suffixes=("_a", "_b")
    )
    equal = np.isclose(pair.estimate_a, pair.estimate_b, rtol=1e-9, atol=1e-12)
    if equal.all():
        return f"the same data sets ({closed[0]}'s {len(pair)} estimates are equal)"
    return (
        f"different data sets ({closed[0]}'s estimates equal in {int(equal.sum())} of "
        f"{len(pair)}): the simulators draw differently, so the two studies are independent"
    )


def compare(a: Path, b: Path) -> tuple[pd.DataFrame, list[str]]:
    """Both studies' measures side by side with ``z``, for the estimators both ran."""
    sa, sb = _summary(a), _summary(b)
    factors = [c for c in sa.columns if c not in SUMMARY_COLUMNS]
    keys = [*factors, "estimator", "parameter", "measure"]
    wide = sa[[*keys, "value", "mcse"]].merge(
        sb[[*keys, "value", "mcse"]], on=keys, suffixes=("_a", "_b")
    )
    diff, scale = wide.value_b - wide.value_a, np.sqrt(wide.mcse_a**2 + wide.mcse_b**2)
    # a measure without Monte Carlo error in both (e.g. coverage 0): agrees when equal
    exact = np.where(np.isclose(diff, 0.0), 0.0, np.sign(diff) * np.inf)
    wide["z"] = np.where(scale > 0, diff / scale.where(scale > 0, 1.0), exact)
    return wide.sort_values(keys).reset_index(drop=True), factors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="the retired family's study directory")
    parser.add_argument("--b", required=True, help="the spec model's study directory")
    parser.add_argument("--out", default="docs/regression_missing_spec.md")
    args = parser.parse_args()
    a, b = Path(args.a), Path(args.b)
    wide, factors = compare(a, b)
    commits = [
        ((read_manifest(d).software if read_manifest(d) else {}).get("simstudy_commit") or "?")[:7]
        for d in (a, b)
    ]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    finite = wide[wide.z.notna()]
    per = (
        finite.assign(agree=finite.z.abs() <= 2)
        .groupby("estimator")
        .agg(
            measures=("z", "size"),
            agree=("agree", "sum"),
            largest_abs_z=("z", lambda z: z.abs().max()),
        )
        .reset_index()
    )
    off = finite[finite.z.abs() > 2]
    shown = wide.assign(
        a=wide.value_a.map("{:.4g}".format) + " (" + wide.mcse_a.map("{:.2g}".format) + ")",
        b=wide.value_b.map("{:.4g}".format) + " (" + wide.mcse_b.map("{:.2g}".format) + ")",
        z=wide.z.round(2),
        agrees=np.where(wide.z.abs() <= 2, "yes", "no"),
    )[[*factors, "estimator", "parameter", "measure", "a", "b", "z", "agrees"]]
    shown = shown.rename(
        columns={
            "a": f"a: {a.parent.name} ({commits[0]})",
            "b": f"b: {b.parent.name} ({commits[1]})",
        }
    )
    lines = [
        f"# {a.name}: the retired hand-written family (a) against the spec model (b)",
        "",
        f"Produced by `.venv/bin/python docs/scripts/retired_tables.py --a {args.a} --b "
        f"{args.b} --out {args.out}` (page written at commit {head}; run a at commit "
        f"{commits[0]}, run b at commit {commits[1]}). Each cell is the measure (its MCSE); "
        "`z` is b's minus a's in units of sqrt(MCSE_a² + MCSE_b²), and a measure agrees when "
        "|z| ≤ 2.",
        "",
        f"Data sets: {same_data(a, b, factors)}.",
        "",
        f"Measures compared: {len(finite)}; agree: {int((finite.z.abs() <= 2).sum())}; "
        f"|z| ≤ 3: {int((finite.z.abs() <= 3).sum())}; largest |z| {finite.z.abs().max():.2f}. "
        f"(Of independent comparisons about 5% would fall beyond 2 by chance; measures of one "
        "estimand are correlated, so disagreements come in groups.)",
        "",
        "## By estimator",
        "",
        _md(per),
        "",
        "## Disagreements (|z| > 2)",
        "",
        _md(off[[*factors, "estimator", "parameter", "measure", "value_a", "value_b", "z"]])
        if len(off)
        else "None.",
        "",
        "## Every measure",
        "",
        _md(shown),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[:8]))


if __name__ == "__main__":
    main()
