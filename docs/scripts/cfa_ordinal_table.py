"""Write docs/cfa_ordinal.md from a finished cfa_ordinal study.

Usage::

    .venv/bin/simstudy run study=cfa_ordinal [overrides, e.g. model.link=logit]
    .venv/bin/python docs/scripts/cfa_ordinal_table.py [results/cfa_ordinal] [out.md]

Every number in the page comes from the study's summary.parquet and replication files:
per condition and parameter kind (loadings, factor correlations, thresholds), the mean and the
largest absolute bias over the parameters of that kind (with the MCSE of the largest), mean and
lowest coverage, and the share of fits whose every parameter reached R-hat <= 1.01 and bulk
ESS >= 400.

The page keeps the table of the retired hand-written sampler's run (commit e82ed9b), read
from the page being replaced (its section :data:`OLD_HEADING`, or, in the page that run wrote,
its first table), and compares the two per condition and kind: the difference of the mean
bias and of the mean coverage against twice the MCSE of the difference. A kind mean's MCSE is
taken as the mean of this run's per-parameter MCSEs of the kind (an upper bound: perfectly
correlated parameters), the old run's as that scaled to its :data:`OLD_REPS` replications
(same design; the old page kept no per-kind MCSE), the difference's as their root sum of
squares.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from simstudy.aggregate.mcmc import fit_convergence
from simstudy.store import read_manifest, read_replications

#: conf/study/cfa_ordinal.yaml's replications per condition (the command names other counts).
STUDY_REPS = 48
FACTORS = ["N", "missing_rate", "mechanism"]
#: Replications per condition of the hand-written sampler's run.
OLD_REPS = 48
#: The section that keeps the hand-written sampler's table.
OLD_HEADING = "## The retired hand-written sampler (commit e82ed9b)"
HEADER = (
    "| N | missing | kind | parameters | mean bias | largest bias (MCSE) | mean coverage "
    "| lowest coverage |"
)


def old_rows(page: str) -> list[str]:
    """The hand-written sampler's table rows, from the page being replaced."""
    lines = page.splitlines()
    start = lines.index(OLD_HEADING) if OLD_HEADING in lines else 0
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("| N | missing"))
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row: str) -> list[str]:
    """A table row's cells (a name such as `x8|t4` keeps its bar: cells part at " | ")."""
    return [c.strip() for c in row.strip()[1:-1].split(" | ")]


def compare(old: list[str], new: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Rows of the old-vs-new table: differences of mean bias and coverage, and their MCSE."""
    s = summary[summary["estimator"] == "bayes"].copy()
    s["kind"] = s["parameter"].map(kind)
    mcse = s.groupby([*FACTORS, "kind", "measure"])["mcse"].mean()
    reps = s.groupby([*FACTORS, "kind", "measure"])["n_reps"].max()
    out = []
    for row in old:
        n, missing, what, _, bias, _, cover, _ = _cells(row)
        rate = float(missing.split("%")[0]) / 100
        mech = missing.split()[-1]
        match = new[(new["N"] == int(n)) & (new["missing_rate"].round(3) == round(rate, 3))]
        match = match[(match["mechanism"] == mech) & (match["kind"] == what)]
        if match.empty:
            out.append(f"| {n} | {missing} | {what} | {bias} | n/a | | {cover} | n/a | | |")
            continue
        r = match.iloc[0]
        key = (int(n), r["missing_rate"], mech, what)
        spread = math.sqrt(1 + reps[(*key, "bias")] / OLD_REPS)  # new and old MCSE together
        se_bias = spread * mcse[(*key, "bias")]
        se_cover = spread * mcse[(*key, "coverage")]
        d_bias = r["mean bias"] - float(bias)
        d_cover = r["mean coverage"] - float(cover)
        agree = abs(d_bias) <= 2 * se_bias and abs(d_cover) <= 2 * se_cover
        out.append(
            f"| {n} | {missing} | {what} | {bias} | {r['mean bias']:+.4f} "
            f"| {d_bias:+.4f} ({se_bias:.4f}) | {cover} | {r['mean coverage']:.3f} "
            f"| {d_cover:+.3f} ({se_cover:.3f}) | {'yes' if agree else 'no'} |"
        )
    return out


def kind(parameter: str) -> str:
    """The kind of a lavaan-style parameter name."""
    if "|t" in parameter:
        return "thresholds"
    if "=~" in parameter:
        return "loadings"
    left, _, right = parameter.partition("~~")
    return "residual variances" if left == right else "factor (co)variances"


def by_kind(summary: pd.DataFrame) -> pd.DataFrame:
    """Bias and coverage summarised over the parameters of each kind, per condition."""
    s = summary[summary["estimator"] == "bayes"].copy()
    s["kind"] = s["parameter"].map(kind)
    rows = []
    for key, group in s.groupby([*FACTORS, "kind"]):
        bias = group[group["measure"] == "bias"]
        cover = group[group["measure"] == "coverage"]
        worst = bias.loc[bias["value"].abs().idxmax()]
        rows.append(
            {
                **dict(zip([*FACTORS, "kind"], key, strict=True)),
                "parameters": len(bias),
                "mean bias": bias["value"].mean(),
                "largest |bias|": f"{worst['value']:+.3f} ({worst['mcse']:.3f}) `{worst['parameter']}`",
                "mean coverage": cover["value"].mean(),
                "lowest coverage": f"{cover['value'].min():.3f} `{cover.loc[cover['value'].idxmin(), 'parameter']}`",
            }
        )
    return pd.DataFrame(rows)


def _reps_used(summary: pd.DataFrame) -> str:
    """Replications the summary used per condition (fewer than planned: a run stopped early)."""
    used = summary.groupby(FACTORS)["n_reps"].max()
    return ", ".join(f"{n} at N={k[0]}, {k[1]:.0%} {k[2]}" for k, n in used.items())


def main(study_dir: Path, old: list[str]) -> str:
    summary = pd.read_parquet(study_dir / "summary.parquet")
    records = read_replications(study_dir)
    manifest = read_manifest(study_dir)
    config = manifest.config if manifest else {}
    planned = config.get("study", {}).get("reps")
    complete = summary.groupby(FACTORS)["n_reps"].max().min() >= (planned or 0)
    partial = (
        []
        if complete
        else [
            f"> **Partial run.** The summary holds {_reps_used(summary)} of the {planned} planned "
            "replications per condition (conditions without any are absent): the run was stopped "
            "before it finished; `simstudy run study=cfa_ordinal` resumes it.",
            "",
        ]
    )
    lines = [
        "# Ordinal CFA: recovery under MAR missingness",
        "",
        *partial,
        "Produced by `.venv/bin/simstudy run study=cfa_ordinal"
        + (f" study.reps={planned}" if planned not in (None, STUDY_REPS) else "")
        + "` and",
        "`.venv/bin/python docs/scripts/cfa_ordinal_table.py`; every number is read from",
        f"`{study_dir}/summary.parquet` and its replication files.",
        f"Model structure: `{json.dumps(config.get('model', {}).get('structure'))}`.",
        "The model is the spec conf/model/cfa_ordinal.yaml, fitted by the compiled Gibbs sweep",
        "(`simstudy.spec`); the hand-written sampler it replaces is compared below.",
        f"Sampler: `{json.dumps(config.get('sampler'))}`; "
        f"{config.get('study', {}).get('reps')} replications per condition planned, "
        f"{_reps_used(summary)} summarised.",
        "",
        "Standardized solution (std.all): truths are loading 0.7, factor correlation 0.3 and",
        "thresholds at the normal quantiles of 0.2, 0.4, 0.6, 0.8. Bias with its MCSE in brackets.",
        "",
        HEADER,
        "| ---: | ---: | --- | ---: | ---: | --- | ---: | --- |",
    ]
    kinds = by_kind(summary)
    for _, r in kinds.iterrows():
        lines.append(
            f"| {r['N']} | {r['missing_rate']:.0%} {r['mechanism']} | {r['kind']} | {r['parameters']} "
            f"| {r['mean bias']:+.4f} | {r['largest |bias|']} | {r['mean coverage']:.3f} | {r['lowest coverage']} |"
        )
    lines += [
        "",
        "## Convergence (every parameter of a fit)",
        "",
        "| N | missing | fits | R-hat ≤ 1.01 and ESS bulk ≥ 400 | median of per-fit min ESS | max R-hat | mean fit seconds |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (n, rate, mech), row in fit_convergence(records, FACTORS).iterrows():
        lines.append(
            f"| {n} | {rate:.0%} {mech} | {row['fits']:.0f} | {100 * row['converged']:.1f}% "
            f"| {row['median_ess']:.0f} | {row['max_rhat']:.3f} | {row['seconds']:.1f} |"
        )
    lines += [
        "",
        "## Old and new agree within MCSE?",
        "",
        "Per condition and kind: the hand-written sampler's mean bias and coverage (below), this",
        "run's, their difference with its MCSE in brackets, and whether both differences are",
        "within twice that MCSE (see docs/scripts/cfa_ordinal_table.py for the MCSE used).",
        "",
        "| N | missing | kind | old mean bias | new mean bias | difference (MCSE) "
        "| old mean coverage | new mean coverage | difference (MCSE) | within 2 MCSE |",
        "| ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | --- | --- |",
        *compare(old, kinds, summary),
        "",
        OLD_HEADING,
        "",
        "Produced by commit e82ed9b (2026-11-22) with the hand-written sampler",
        "(`simstudy/models/cfa/`, since deleted), same design, priors and sampler settings.",
        "",
        HEADER,
        "| ---: | ---: | --- | ---: | ---: | --- | ---: | --- |",
        *old,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    study = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/cfa_ordinal")
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parents[1] / "cfa_ordinal.md"
    text = main(study, old_rows(out.read_text()))
    out.write_text(text)
    print(text)
    print(f"written: {out}")
