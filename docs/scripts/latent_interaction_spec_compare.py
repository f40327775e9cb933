"""Write docs/latent_interaction_spec.md: the seeds' study from the spec vs the hand-written family.

The hand-written family was retired (commit 789b105 is the last that has it), so its study
can no longer be run from this checkout: docs/latent_interaction_spec.md is the last comparison.
The script still compares two finished result directories. Usage::

    .venv/bin/simstudy run study=latent_interaction              # the spec config
    # the same study on the hand-written family, run from a checkout of commit 789b105 or
    # earlier (the page's run: main at 680a374, where study=latent_interaction was the family)
    # and copied to this directory:
    #   simstudy run study=latent_interaction model=latent_interaction_handwritten \\
    #       study.name=latent_interaction_handwritten
    .venv/bin/python docs/scripts/latent_interaction_spec_compare.py \\
        results/latent_interaction results/latent_interaction_handwritten

Every measure both studies report with a Monte Carlo SE, of every estimator x estimand x
condition they share (the spec's simple slopes ``slope_lo``/``slope_hi`` are the family's
``eta_y~eta_x@eta_m=-1SD``/``+1SD``), is compared: the difference against 2 combined MCSE
(``sqrt(mcse_a^2 + mcse_b^2)``; the two studies draw their data sets independently).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd

from simstudy.store import read_manifest, read_replications

#: The spec's names of the family's estimands where they differ.
SPEC_NAMES = {"eta_y~eta_x@eta_m=-1SD": "slope_lo", "eta_y~eta_x@eta_m=+1SD": "slope_hi"}
#: Measures of the computation, not of the estimator: they differ by sampler, and have no MCSE.
COMPUTATIONAL = {
    "seconds",
    "ess_per_second",
    "ess_bulk",
    "ess_tail",
    "ess_bulk_min",
    "ess_tail_min",
}
KEYS = ["N", "estimator", "parameter", "measure"]


def _commit(study_dir: Path) -> str:
    manifest = read_manifest(study_dir)
    software = getattr(manifest, "software", None) or {}
    return str(software.get("simstudy_commit", "unknown"))[:7]


def compared(spec_dir: Path, family_dir: Path) -> pd.DataFrame:
    """One row per shared (N, estimator, parameter, measure) with both values and the verdict."""
    spec = pd.read_parquet(spec_dir / "summary.parquet")
    family = pd.read_parquet(family_dir / "summary.parquet")
    family = family.assign(parameter=family["parameter"].replace(SPEC_NAMES))
    both = spec.merge(family, on=KEYS, suffixes=("_spec", "_family"))
    both = both[~both["measure"].isin(COMPUTATIONAL | {"truth"})]
    both = both.dropna(subset=["value_spec", "value_family", "mcse_spec", "mcse_family"])
    both["diff"] = both["value_spec"] - both["value_family"]
    both["mcse"] = (both["mcse_spec"] ** 2 + both["mcse_family"] ** 2) ** 0.5
    # a measure with no spread (a share of 0 or 1 in both) agrees when the values do
    both["z"] = (both["diff"] / both["mcse"].where(both["mcse"] > 0)).fillna(
        both["diff"].where(both["diff"] == 0, float("inf"))
    )
    both["within"] = both["z"].abs() <= 2
    return both[[*KEYS, "value_spec", "value_family", "diff", "mcse", "z", "within"]]


def _converged(study_dir: Path) -> pd.DataFrame:
    """Per N: shares of converged fits of ``bayes``, with and without the indicator intercepts."""
    records = read_replications(study_dir)
    bayes = records[records["estimator"] == "bayes"]
    intercept = bayes["parameter"].str.endswith("~1")

    def share(rows: pd.DataFrame) -> pd.Series:
        per_fit = rows.groupby(["N", "rep"]).agg(ess=("ess_bulk", "min"), rhat=("rhat", "max"))
        ok = (per_fit["ess"] >= 400) & (per_fit["rhat"] <= 1.01)
        return ok.groupby("N").mean()

    low = bayes[intercept].groupby(["N", "rep"])["ess_bulk"].min()
    return pd.DataFrame(
        {
            "all": share(bayes),
            "shared": share(bayes[~intercept]),
            "intercept_ess": bayes[intercept].groupby("N")["ess_bulk"].min(),
            "intercept_low": (low < 400).groupby("N").mean(),
        }
    )


def _seconds(study_dir: Path, estimator: str) -> pd.Series:
    summary = pd.read_parquet(study_dir / "summary.parquet")
    rows = summary[(summary["estimator"] == estimator) & (summary["measure"] == "seconds")]
    return rows.groupby("N")["value"].first()


def main(spec_dir: Path, family_dir: Path) -> str:
    table = compared(spec_dir, family_dir)
    n, out = len(table), int((~table["within"]).sum())
    spread = int((table["mcse"] > 0).sum())
    expected = spread * 2 * (1 - 0.5 * (1 + math.erf(2 / math.sqrt(2))))
    lines = [
        "# Latent interaction: the spec config against the hand-written family",
        "",
        "Produced by `.venv/bin/python docs/scripts/latent_interaction_spec_compare.py "
        f"{spec_dir} {family_dir}` from two runs of `simstudy run study=latent_interaction` "
        "(500 replications, N = 250 and 500, estimators bayes, fs_imputation, sum_score_ols): "
        f"the spec config `conf/model/latent_interaction.yaml` (code: commit {_commit(spec_dir)}) "
        f"and the hand-written family `simstudy/models/latent_interaction/` (commit "
        f"{_commit(family_dir)}). The two draw their data sets independently (another simulator).",
        "",
        f"Compared: every measure with a Monte Carlo SE of every estimator x estimand x N both "
        f"report ({n} numbers; the spec's `slope_lo`/`slope_hi` are the family's "
        "`eta_y~eta_x@eta_m=-1SD`/`+1SD`; sampler timings and ESS left out, they are the "
        f"sampler's). Outside 2 combined MCSE: **{out}** (about {expected:.0f} expected by "
        f"chance if every difference were 0: 4.6% of the {spread} with a positive MCSE; the "
        "measures of one estimand are correlated, so they come in clusters).",
        "",
        "## Outside 2 combined MCSE",
        "",
        "| N | estimator | parameter | measure | spec | hand-written | difference | combined MCSE | z |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, r in table[~table["within"]].sort_values(KEYS).iterrows():
        lines.append(
            f"| {r['N']} | {r['estimator']} | `{r['parameter']}` | {r['measure']} | "
            f"{r['value_spec']:.4f} | {r['value_family']:.4f} | {r['diff']:+.4f} | "
            f"{r['mcse']:.4f} | {r['z']:+.2f} |"
        )
    lines += [
        "",
        "## By estimator and measure: the largest |z| over estimands and N",
        "",
        "| estimator | measure | compared | outside 2 MCSE | max abs z |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    grouped = table.groupby(["estimator", "measure"])
    for (est, measure), g in grouped:
        lines.append(
            f"| {est} | {measure} | {len(g)} | {int((~g['within']).sum())} | "
            f"{g['z'].abs().max():.2f} |"
        )
    lines += [
        "",
        "## Convergence of `bayes`: share of fits with R-hat <= 1.01 and bulk ESS >= 400",
        "",
        "`unconverged_rate` counts every estimand of a fit; the spec also reports the nine "
        "indicator intercepts (`x1~1` ...), which the hand-written family does not.",
        "",
        "| N | spec, every estimand | spec, without the intercepts | hand-written | spec: lowest "
        "intercept ESS | spec: share of fits with an intercept's ESS < 400 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    spec_conv, family_conv = _converged(spec_dir), _converged(family_dir)
    for size, row in spec_conv.iterrows():
        lines.append(
            f"| {size} | {row['all']:.3f} | {row['shared']:.3f} | "
            f"{family_conv.loc[size, 'all']:.3f} | {row['intercept_ess']:.0f} | "
            f"{row['intercept_low']:.3f} |"
        )
    spec_s, family_s = _seconds(spec_dir, "bayes"), _seconds(family_dir, "bayes")
    lines += [
        "",
        "## Seconds per replication of `bayes` (mean fit time)",
        "",
        "On 2 CPU cores shared with other work: each run overlapped with the other and with "
        "tests for part of its time, so these are rough.",
        "",
        "| N | spec (compiled sweep) | hand-written |",
        "| ---: | ---: | ---: |",
    ]
    for size in spec_s.index:
        lines.append(f"| {size} | {spec_s[size]:.3f} | {family_s.get(size, float('nan')):.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    spec_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/latent_interaction")
    family_dir = Path(sys.argv[2])
    out = Path(__file__).resolve().parents[1] / "latent_interaction_spec.md"
    text = main(spec_dir, family_dir)
    out.write_text(text)
    print(text)
    print(f"written: {out}")
