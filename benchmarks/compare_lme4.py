"""`simstudy fit` of a random intercept and slope model against lme4's REML on the same data.

Data: lme4's `sleepstudy` (18 subjects x 10 days of reaction times), written to CSV by R.
Reference: `lmer(Reaction ~ 1 + Days + (1 + Days | Subject), REML = TRUE)` (Debian's
`r-cran-lme4`). simstudy: `simstudy fit model=spec 'model.syntax=...'` at its default settings
(no prior settings: the priors it puts on the data's scale), with the compiled Gibbs sweep
(`bayes`) and with the NumPyro model on ChEES and on NUTS (`bayes_hmc`). Writes
`benchmarks/results/compare_lme4.{md,parquet}`: per back end and fixed effect, both estimates
and SEs and their difference in lme4 standard errors; the variance components side by side
(REML's point estimates against posterior means). Exits 1 unless every fixed effect is within
0.5 lme4 SE and every residual variance within 20% of REML's.

    .venv/bin/python benchmarks/compare_lme4.py [--draws 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import frame_markdown

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
SYNTAX = "Reaction ~ 1 + Days + (1 + Days | Subject)"
R_CODE = """
suppressMessages(library(lme4))
data(sleepstudy)
write.csv(sleepstudy[, c("Reaction", "Days", "Subject")], "{csv}", row.names = FALSE)
m <- lmer(Reaction ~ 1 + Days + (1 + Days | Subject), sleepstudy, REML = TRUE)
co <- summary(m)$coefficients
vc <- as.data.frame(VarCorr(m))
cat(jsonlite::toJSON(list(
  fixed = list(name = rownames(co), estimate = co[, 1], se = co[, 2]),
  vc = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov),
  version = as.character(packageVersion("lme4"))), digits = NA))
"""


def lme4_reference(csv: Path) -> dict:
    """lme4's REML fit (and the data written to ``csv``)."""
    code = R_CODE.replace("{csv}", str(csv))
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


#: The back ends compared: (estimator, sampler).
BACK_ENDS = (("bayes", "gibbs"), ("bayes_hmc", "chees"), ("bayes_hmc", "nuts"))
#: Largest |difference| of a fixed effect in lme4 SEs, and relative error of the residual variance.
FIXED_TOL, RESIDUAL_TOL = 0.5, 0.2


def simstudy_fit(csv: Path, out: Path, estimator: str, sampler: str, draws: int) -> pd.DataFrame:
    """``simstudy fit`` of the same model at default settings; its posterior summary table."""
    command = [
        str(ROOT / ".venv" / "bin" / "simstudy"),
        "fit",
        "model=spec",
        f"model.syntax={SYNTAX}",
        f"data={csv}",
        f"out={out}",
        f"estimator={estimator}",
        f"sampler={sampler}",
        f"sampler.draws={draws}",
    ]
    subprocess.run(command, check=True)
    return pd.read_parquet(out)


def compare(ref: dict, fit: pd.DataFrame) -> list[dict]:
    """Rows of one back end's fit against lme4's: fixed effects, then variance components."""
    rows = []
    for name, est, se in zip(*ref["fixed"].values(), strict=True):
        ours = "Reaction~1" if name == "(Intercept)" else f"Reaction~{name}"
        mean, sd = fit.loc[ours, "mean"], fit.loc[ours, "sd"]
        rows.append(
            {
                "parameter": ours,
                "kind": "fixed",
                "lme4": est,
                "lme4_se": se,
                "simstudy": mean,
                "simstudy_sd": sd,
                "difference": (mean - est) / se,
                "rhat": fit.loc[ours, "rhat"],
                "ess_bulk": fit.loc[ours, "ess_bulk"],
            }
        )
    names = {"(Intercept)": "1", "Days": "Days"}
    for grp, v1, v2, vcov in zip(*ref["vc"].values(), strict=True):
        if grp == "Residual":
            ours = "Reaction~~Reaction"
        else:
            a, b = names[v1], names[v2] if v2 not in (None, "NA") else names[v1]
            ours = f"{a}|{grp}~~{b}|{grp}"
        mean = fit.loc[ours, "mean"]
        rows.append(
            {
                "parameter": ours,
                "kind": "variance component",
                "lme4": vcov,
                "lme4_se": float("nan"),
                "simstudy": mean,
                "simstudy_sd": fit.loc[ours, "sd"],
                # relative difference for the residual variance; the others are skewed (below)
                "difference": (mean - vcov) / vcov if grp == "Residual" else float("nan"),
                "rhat": fit.loc[ours, "rhat"],
                "ess_bulk": fit.loc[ours, "ess_bulk"],
            }
        )
    return rows


def passes(table: pd.DataFrame) -> pd.Series:
    """Per back end: fixed effects within FIXED_TOL lme4 SEs, residual variance within RESIDUAL_TOL."""
    fixed = table[table.kind == "fixed"].groupby("back_end")["difference"]
    residual = table[table.parameter == "Reaction~~Reaction"].set_index("back_end")["difference"]
    return (fixed.apply(lambda d: d.abs().max() <= FIXED_TOL)) & (residual.abs() <= RESIDUAL_TOL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    args = parser.parse_args()
    rows, settings = [], []
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "sleepstudy.csv"
        ref = lme4_reference(csv)
        for estimator, sampler in BACK_ENDS:
            fit_out = Path(tmp) / f"{estimator}-{sampler}.parquet"
            fit = simstudy_fit(csv, fit_out, estimator, sampler, args.draws)
            record = json.loads(pq.read_schema(fit_out).metadata[b"simstudy.fit"])
            back_end = f"{estimator} ({sampler})"
            rows += [{"back_end": back_end, **r} for r in compare(ref, fit.set_index("parameter"))]
            s = record["sampler"]
            settings.append(
                f"`{back_end}`: {s['chains']} chains x {s['warmup']} warmup + {s['draws']} draws"
            )
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / "compare_lme4.parquet", index=False)
    ok = passes(table)
    priors = "; ".join(f"{k}: {v}" for k, v in record["priors_used"].items())
    lines = [
        "# `simstudy fit` against lme4 (REML) on sleepstudy, at default settings",
        "",
        f"Produced by `.venv/bin/python benchmarks/compare_lme4.py --draws {args.draws}` "
        f"(simstudy {record['versions'].get('simstudy')}, commit "
        f"{record['versions'].get('simstudy_commit', '?')}; lme4 {''.join(ref['version'])}).",
        "",
        f"Model `{SYNTAX}`, 180 rows, seed {record['seed']}; "
        + ", ".join(settings)
        + ". No prior settings: `simstudy fit` puts the priors on the data's scale, "
        f"here {priors} (LKJ({record['priors']['lkj_eta']:g}) on the random effects' "
        "correlation). `difference`: (simstudy - lme4) / lme4's SE for fixed effects, "
        "(simstudy - lme4) / lme4 for the residual variance. lme4's variance components are "
        "REML point estimates; simstudy's are posterior means (with 18 subjects their "
        "posteriors are skewed, so means sit above REML's modes).",
        "",
        f"Check (fixed effects within {FIXED_TOL} SE, residual variance within "
        f"{RESIDUAL_TOL:.0%}): "
        + ", ".join(f"{b} {'passes' if v else 'FAILS'}" for b, v in ok.items()),
        "",
        frame_markdown(table),
        "",
    ]
    (OUT / "compare_lme4.md").write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if ok.all() else 1)


if __name__ == "__main__":
    main()
