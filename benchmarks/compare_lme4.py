"""`simstudy fit` of a random intercept and slope model against lme4's REML on the same data.

Data: lme4's `sleepstudy` (18 subjects x 10 days of reaction times), written to CSV by R.
Reference: `lmer(Reaction ~ 1 + Days + (1 + Days | Subject), REML = TRUE)` (Debian's
`r-cran-lme4`). simstudy: `simstudy fit model=spec 'model.syntax=...'` with the compiled Gibbs
sweep and priors on the data's scale. Writes `benchmarks/results/compare_lme4.{md,parquet}`:
per fixed effect, both estimates and SEs and their difference in lme4 standard errors; the
variance components side by side (REML's point estimates against posterior means).

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


def simstudy_fit(csv: Path, out: Path, draws: int) -> pd.DataFrame:
    """``simstudy fit`` of the same model; its posterior summary table."""
    command = [
        str(ROOT / ".venv" / "bin" / "simstudy"),
        "fit",
        "model=spec",
        f"model.syntax={SYNTAX}",
        f"data={csv}",
        f"out={out}",
        f"sampler.draws={draws}",
        # priors on the data's scale: reaction times in ms (mean ~ 300, SD ~ 50)
        "model.priors.coef_sd=1000",
        "model.priors.sigma_scale=100",
        "model.priors.cov_scale=100",
    ]
    subprocess.run(command, check=True)
    return pd.read_parquet(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv, fit_out = Path(tmp) / "sleepstudy.csv", Path(tmp) / "fit.parquet"
        ref = lme4_reference(csv)
        fit = simstudy_fit(csv, fit_out, args.draws).set_index("parameter")
        record = json.loads(pq.read_schema(fit_out).metadata[b"simstudy.fit"])
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
                "difference_in_se": (mean - est) / se,
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
        rows.append(
            {
                "parameter": ours,
                "kind": "variance component",
                "lme4": vcov,
                "lme4_se": float("nan"),
                "simstudy": fit.loc[ours, "mean"],
                "simstudy_sd": fit.loc[ours, "sd"],
                "difference_in_se": float("nan"),
                "rhat": fit.loc[ours, "rhat"],
                "ess_bulk": fit.loc[ours, "ess_bulk"],
            }
        )
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / "compare_lme4.parquet", index=False)
    sampler = record["sampler"]
    lines = [
        "# `simstudy fit` against lme4 (REML) on sleepstudy",
        "",
        f"Produced by `.venv/bin/python benchmarks/compare_lme4.py --draws {args.draws}` "
        f"(simstudy {record['versions'].get('simstudy')}, commit "
        f"{record['versions'].get('simstudy_commit', '?')}; lme4 {''.join(ref['version'])}).",
        "",
        f"Model `{SYNTAX}`, 180 rows; simstudy: estimator `{record['estimator']}` (compiled "
        f"Gibbs sweep), {sampler['chains']} chains x {sampler['warmup']} warmup + "
        f"{sampler['draws']} draws, seed {record['seed']}, priors {record['priors']}. lme4's "
        "variance components are REML point estimates; simstudy's are posterior means (with "
        "18 subjects their posteriors are skewed, so means sit above REML's modes).",
        "",
        frame_markdown(table),
        "",
    ]
    (OUT / "compare_lme4.md").write_text("\n".join(lines))
    print("\n".join(lines))
    worst = table.loc[table.kind == "fixed", "difference_in_se"].abs().max()
    sys.exit(0 if worst <= 0.5 else 1)


if __name__ == "__main__":
    main()
