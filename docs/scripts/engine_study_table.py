"""Two estimators' performance measures side by side (e.g. hand-written against compiled).

Its first page, docs/latent_interaction_engine.md, compared the hand-written and the compiled
latent interaction samplers (study ``latent_interaction_engine``, retired with the hand-written
family; commit 789b105 is the last that has them). Usage::

    .venv/bin/simstudy run && .venv/bin/simstudy run study.estimators=[bayes] \
        study.name=missing_x_gibbs
    .venv/bin/python docs/scripts/engine_study_table.py --a results/missing_x:bayes_fiml \
        --b results/missing_x_gibbs:bayes --out docs/missing_x_gibbs.md

For every condition, estimand and measure (bias, empirical SE, coverage, model SE), the two
estimators' values with MCSEs and their difference in units of ``sqrt(mcse_a^2 + mcse_b^2)``:
exact for two studies (independent data sets), conservative for one (the same data sets, so
the errors are positively correlated). Seconds per fit, min ESS and time per min ESS come from
the replication files.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from simstudy.store import read_manifest, read_replications

MEASURES = ("bias", "empse", "coverage", "modelse")
SUMMARY_COLUMNS = (
    "condition_id",
    "estimator",
    "parameter",
    "measure",
    "value",
    "mcse",
    "n_reps",
    "n_excluded",
    "reference",
    "note",
)


def _rows(study: Path, estimator: str, tag: str) -> pd.DataFrame:
    s = pd.read_parquet(study / "summary.parquet")
    return s[s.estimator == estimator].assign(estimator=tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, metavar="STUDY_DIR:ESTIMATOR")
    parser.add_argument("--b", required=True, metavar="STUDY_DIR:ESTIMATOR")
    parser.add_argument("--out", required=True, metavar="PAGE")
    args = parser.parse_args()
    dir_a, a = Path(args.a.rsplit(":", 1)[0]), args.a.rsplit(":", 1)[1]
    dir_b, b = Path(args.b.rsplit(":", 1)[0]), args.b.rsplit(":", 1)[1]
    summary = pd.concat([_rows(dir_a, a, "a"), _rows(dir_b, b, "b")])
    reps = pd.concat(
        [
            read_replications(dir_a).query("estimator == @a").assign(estimator="a"),
            read_replications(dir_b).query("estimator == @b").assign(estimator="b"),
        ]
    )
    factors = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    common = sorted(
        set(reps.loc[reps.estimator == "a", "parameter"])
        & set(reps.loc[reps.estimator == "b", "parameter"])
    )
    s = summary[summary.measure.isin(MEASURES) & summary.parameter.isin(common)]
    wide = s.pivot_table(
        index=[*factors, "parameter", "measure"], columns="estimator", values=["value", "mcse"]
    )
    z = (wide["value", "b"] - wide["value", "a"]) / np.sqrt(
        wide["mcse", "a"] ** 2 + wide["mcse", "b"] ** 2
    )

    def shown(k):
        return (
            wide["value", k].round(4).astype(str)
            + " ("
            + wide["mcse", k].round(4).astype(str)
            + ")"
        )

    table = pd.DataFrame(
        {f"{a} ({dir_a.name})": shown("a"), f"{b} ({dir_b.name})": shown("b"), "z": z.round(2)}
    ).reset_index()
    ok = reps[reps.status == "ok"]
    per_fit = ok.groupby([*factors, "estimator", "rep"]).agg(
        seconds=("seconds", "first"), min_ess=("ess_bulk", "min")
    )
    cost = per_fit.groupby([*factors, "estimator"]).agg(
        fits=("seconds", "size"),
        seconds_per_fit=("seconds", "mean"),
        min_ess_median=("min_ess", "median"),
    )
    cost["s_per_min_ess"] = (
        per_fit.assign(r=per_fit.seconds / per_fit.min_ess)
        .groupby([*factors, "estimator"])
        .r.median()
    )
    cost = cost.rename(index={"a": a, "b": b})
    failed = int((reps.status != "ok").sum())
    manifest = read_manifest(dir_b)
    commit = (manifest.software if manifest else {}).get("simstudy_commit", "?")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"# {a} ({dir_a.name}) and {b} ({dir_b.name}), measure by measure",
        "",
        f"Produced by `.venv/bin/python docs/scripts/engine_study_table.py --a {args.a} --b "
        f"{args.b} --out {args.out}` from finished runs (page written at commit {head}; "
        f"the run of {dir_b.name} names commit {commit}). `z` is the difference of "
        f"{b}'s measure from {a}'s in units of sqrt(MCSE_a² + MCSE_b²).",
        "",
        f"Measures: {len(z)}; |z| ≤ 2: {float((z.abs() <= 2).mean()):.3f}; "
        f"|z| ≤ 3: {float((z.abs() <= 3).mean()):.3f}; largest |z| {float(z.abs().max()):.2f}.",
        f"Failed fits: {failed}.",
        "",
        "## Cost",
        "",
        _md(cost.reset_index()),
        "",
        "## Measures",
        "",
        _md(table),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[:12]))


def _md(frame: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|")

    rows = [" | ".join(map(str, frame.columns)), " | ".join("---" for _ in frame.columns)]
    rows += [" | ".join(cell(v) for v in r) for r in frame.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


if __name__ == "__main__":
    main()
