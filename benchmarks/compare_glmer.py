"""`simstudy fit` of a binary GLMM (logit and probit) against lme4's glmer on the same data.

Data: lme4's `cbpp` (contagious bovine pleuropneumonia: `incidence` new cases among `size`
cattle per herd and period), written by R as one 0/1 row per animal and period (`y`), with
`period` a nominal predictor (codes 1..4) and `herd` the grouping factor. Reference:
`glmer(y ~ period + (1 | herd), family = binomial(link))` (Debian's `r-cran-lme4`, Laplace).
simstudy: `simstudy fit model=spec 'model.syntax=y ~ 1 + period + (1 | herd)'
model.ordered=[y] 'model.nominal={period: 4}' model.link=LINK` at its default settings (its
priors on the data's scale), the compiled Gibbs sweep. Writes
`benchmarks/results/compare_glmer.{md,parquet}`: per link and fixed effect both estimates
and SEs and their difference in glmer SEs, the herd SD side by side (glmer's estimate against
the posterior median of the SD, the posterior analogue of a mode-type estimate; the mean of a
variance's posterior over 15 herds is pulled right by its skew, shown too), and each fixed
effect's logit / probit ratio beside glmer's (the usual scaling, ~1.6-1.8). Exits 1 unless
every fixed effect is within 0.5 glmer SE and the herd SD within 20% of glmer's, for both
links, and every ratio within 10% of glmer's.

    .venv/bin/python benchmarks/compare_glmer.py [--draws 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import frame_markdown

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
SYNTAX = "y ~ 1 + period + (1 | herd)"
R_CODE = """
suppressMessages(library(lme4))
data(cbpp)
rows <- do.call(rbind, lapply(seq_len(nrow(cbpp)), function(i) data.frame(
  herd = as.integer(cbpp$herd[i]), period = as.integer(cbpp$period[i]),
  y = c(rep(1, cbpp$incidence[i]), rep(0, cbpp$size[i] - cbpp$incidence[i])))))
write.csv(rows, "{csv}", row.names = FALSE)
rows$period <- factor(rows$period)
fit <- function(link) {
  m <- glmer(y ~ period + (1 | herd), data = rows, family = binomial(link))
  co <- summary(m)$coefficients
  list(name = rownames(co), estimate = co[, 1], se = co[, 2],
       herd_sd = attr(VarCorr(m)$herd, "stddev")[[1]])
}
cat(jsonlite::toJSON(list(logit = fit("logit"), probit = fit("probit"), rows = nrow(rows),
  version = as.character(packageVersion("lme4"))), digits = NA, auto_unbox = TRUE))
"""
#: glmer's names of the fixed effects -> simstudy's.
NAMES = {
    "(Intercept)": "y~1",
    "period2": "y~period2",
    "period3": "y~period3",
    "period4": "y~period4",
}
#: Largest |difference| of a fixed effect in glmer SEs; relative error of the herd SD.
FIXED_TOL, SD_TOL = 0.5, 0.2
#: Largest relative difference of a logit / probit ratio from glmer's.
RATIO_TOL = 0.1


def glmer_reference(csv: Path) -> dict:
    """glmer's fits, both links (and the data written to ``csv``)."""
    code = R_CODE.replace("{csv}", str(csv))
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def simstudy_fit(csv: Path, out: Path, link: str, draws: int) -> pd.DataFrame:
    """``simstudy fit`` at default settings; its posterior summary table, by parameter."""
    command = [
        str(ROOT / ".venv" / "bin" / "simstudy"),
        "fit",
        "model=spec",
        f"model.syntax={SYNTAX}",
        "model.ordered=[y]",
        "model.nominal={period: 4}",
        f"model.link={link}",
        f"data={csv}",
        f"out={out}",
        "estimator=bayes",
        f"sampler.draws={draws}",
    ]
    subprocess.run(command, check=True)
    return pd.read_parquet(out).set_index("parameter")


def compare(ref: dict, fit: pd.DataFrame, link: str) -> list[dict]:
    """Rows of one link's fit against glmer's: fixed effects, then the herd SD."""
    rows = []
    for name, est, se in zip(ref["name"], ref["estimate"], ref["se"], strict=True):
        ours = fit.loc[NAMES[name]]
        rows.append(
            {
                "link": link,
                "parameter": NAMES[name],
                "glmer": est,
                "glmer_se": se,
                "simstudy": ours["mean"],
                "simstudy_sd": ours["sd"],
                "diff_in_se": (ours["mean"] - est) / se,
                "ess_bulk": ours["ess_bulk"],
                "rhat": ours["rhat"],
                "ok": abs(ours["mean"] - est) / se <= FIXED_TOL,
            }
        )
    var = fit.loc["1|herd~~1|herd"]
    sd = float(np.sqrt(var["median"]))  # the SD's posterior median (a monotone transform's)
    rows.append(
        {
            "link": link,
            "parameter": "SD(1|herd)",
            "glmer": ref["herd_sd"],
            "simstudy": sd,
            "simstudy_sd": np.nan,
            "sqrt_mean_var": float(np.sqrt(var["mean"])),
            "diff_in_se": np.nan,
            "ess_bulk": var["ess_bulk"],
            "rhat": var["rhat"],
            "ok": abs(sd - ref["herd_sd"]) / ref["herd_sd"] <= SD_TOL,
        }
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "cbpp.csv"
        ref = glmer_reference(csv)
        fits = {
            link: simstudy_fit(csv, Path(tmp) / f"{link}.parquet", link, args.draws)
            for link in ("logit", "probit")
        }
    table = pd.DataFrame([r for link, fit in fits.items() for r in compare(ref[link], fit, link)])
    fixed = [NAMES[n] for n in ref["logit"]["name"]]
    glmer = {
        link: dict(zip((NAMES[n] for n in ref[link]["name"]), ref[link]["estimate"], strict=True))
        for link in ("logit", "probit")
    }
    scaling = pd.DataFrame(
        {
            "parameter": fixed,
            "simstudy logit / probit": [
                fits["logit"].loc[n, "mean"] / fits["probit"].loc[n, "mean"] for n in fixed
            ],
            "glmer logit / probit": [glmer["logit"][n] / glmer["probit"][n] for n in fixed],
        }
    )
    rel = scaling["simstudy logit / probit"] / scaling["glmer logit / probit"] - 1
    scaling["ok"] = rel.abs() <= RATIO_TOL
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / "compare_glmer.parquet")
    lines = [
        "# Binary GLMM: simstudy fit against glmer (lme4's cbpp)",
        "",
        f"Produced by `.venv/bin/python benchmarks/compare_glmer.py --draws {args.draws}` "
        f"(lme4 {ref['version']}, {ref['rows']} rows: one per animal and period). Model "
        f"`{SYNTAX}`, `y` binary, `period` nominal; simstudy at its default settings "
        "(priors on the data's scale), the compiled Gibbs sweep, 2 chains. glmer: Laplace. "
        f"Pass: every fixed effect within {FIXED_TOL} glmer SE, the herd SD within "
        f"{SD_TOL:.0%} (simstudy's: its posterior median; `sqrt_mean_var`: the square root "
        "of the posterior mean variance, for comparison), each logit / probit ratio within "
        f"{RATIO_TOL:.0%} of glmer's.",
        "",
        frame_markdown(table, digits=3),
        "",
        "Each fixed effect's logit / probit ratio (the usual scaling):",
        "",
        frame_markdown(scaling, digits=3),
        "",
    ]
    (OUT / "compare_glmer.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if table["ok"].all() and scaling["ok"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
