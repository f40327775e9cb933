"""`simstudy fit` of the Holzinger-Swineford three-factor CFA against lavaan's ML, per back end.

Data: lavaan's `HolzingerSwineford1939` (301 pupils, items x1..x9), written to CSV by R.
Reference: `cfa(model, data)` with lavaan's defaults (ML, marker indicators; Debian's
`r-cran-lavaan`). simstudy: `simstudy fit model=spec 'model.syntax=...'` at default settings
(priors, sampler settings, seed) for estimator `bayes` (the compiled Gibbs sweep, sampler
`gibbs`) and estimator `bayes_hmc` (the NumPyro model) with sampler `chees` and with `nuts`.
Writes `benchmarks/results/compare_lavaan_hs.{md,parquet}`: for each of lavaan's 21 free
parameters and each back end the posterior median and mean, their distances from lavaan's
estimate in lavaan standard errors, bulk ESS and R-hat; and per back end whether every
parameter's median is within 0.5 SE, at ESS >= 400 and at R-hat <= 1.01. Exits 1 when a back
end misses any of these. The median is the point estimate checked: Mplus's and Blimp's Bayesian
default, and with a skewed posterior (a loading of a weakly measured factor) the summary nearer
its mode, which flat priors make the ML estimate; the mean's distance is shown beside it.

    .venv/bin/python benchmarks/compare_lavaan_hs.py [--backends bayes chees nuts]
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
SYNTAX = "visual =~ x1 + x2 + x3; textual =~ x4 + x5 + x6; speed =~ x7 + x8 + x9"
#: Back end -> the `simstudy fit` arguments that choose it (all else at its defaults).
BACKENDS = {
    "bayes": ["estimator=bayes", "sampler=gibbs"],
    "chees": ["estimator=bayes_hmc", "sampler=chees"],
    "nuts": ["estimator=bayes_hmc", "sampler=nuts"],
}
#: The reference checks every back end must pass.
MAX_SE, MIN_ESS, MAX_RHAT = 0.5, 400.0, 1.01
R_CODE = """
suppressMessages(library(lavaan))
d <- HolzingerSwineford1939[, paste0("x", 1:9)]
write.csv(d, "{csv}", row.names = FALSE)
fit <- cfa("{syntax}", data = d)
pe <- parameterEstimates(fit)
pe <- pe[!(pe$se == 0 & pe$op == "=~"), ]
cat(jsonlite::toJSON(list(lhs = pe$lhs, op = pe$op, rhs = pe$rhs, est = pe$est, se = pe$se,
  version = as.character(packageVersion("lavaan"))), digits = NA))
"""


def lavaan_reference(csv: Path) -> pd.DataFrame:
    """lavaan's ML estimates and SEs of the free parameters (and the data written to ``csv``)."""
    code = R_CODE.replace("{csv}", str(csv)).replace("{syntax}", SYNTAX)
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
    ref = json.loads(out.stdout)
    frame = pd.DataFrame({k: ref[k] for k in ("lhs", "op", "rhs", "est", "se")})
    frame.attrs["version"] = "".join(ref["version"])
    return frame


def simstudy_fit(csv: Path, out: Path, backend: str) -> tuple[pd.DataFrame, dict]:
    """``simstudy fit`` of the CFA with one back end at its defaults: summary and record."""
    command = [
        str(ROOT / ".venv" / "bin" / "simstudy"),
        "fit",
        "model=spec",
        f"model.syntax={SYNTAX}",
        f"data={csv}",
        f"out={out}",
        *BACKENDS[backend],
    ]
    subprocess.run(command, check=True)
    record = json.loads(pq.read_schema(out).metadata[b"simstudy.fit"])
    return pd.read_parquet(out).set_index("parameter"), record


def our_name(lhs: str, op: str, rhs: str, names: pd.Index) -> str:
    """simstudy's name of a lavaan parameter; a covariance in either order of its variables."""
    name = f"{lhs}{op}{rhs}"
    if name not in names and op == "~~":
        name = f"{rhs}~~{lhs}"
    if name not in names:
        raise KeyError(f"lavaan's {lhs}{op}{rhs} is not among simstudy's {list(names)}")
    return name


def compare(ref: pd.DataFrame, fit: pd.DataFrame, backend: str) -> pd.DataFrame:
    """One row per lavaan parameter: both estimates, the distance in SEs, ESS and R-hat."""
    rows = []
    for r in ref.itertuples(index=False):
        name = our_name(r.lhs, r.op, r.rhs, fit.index)
        mean, median = fit.loc[name, "mean"], fit.loc[name, "median"]
        rows.append(
            {
                "parameter": f"{r.lhs}{r.op}{r.rhs}",
                "backend": backend,
                "lavaan": r.est,
                "lavaan_se": r.se,
                "posterior_median": median,
                "abs_diff_in_se": abs(median - r.est) / r.se,
                "posterior_mean": mean,
                "mean_abs_diff_in_se": abs(mean - r.est) / r.se,
                "ess_bulk": fit.loc[name, "ess_bulk"],
                "rhat": fit.loc[name, "rhat"],
            }
        )
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame, records: dict[str, dict], fits: dict) -> pd.DataFrame:
    """Per back end: the worst parameter on each check, and whether all 21 pass each."""
    rows = []
    for backend, part in table.groupby("backend", sort=False):
        s = records[backend]["sampler"]
        rows.append(
            {
                "backend": backend,
                "estimator": records[backend]["estimator"],
                "sampler": f"{s['name']} {s['chains']}x({s['warmup']}+{s['draws']})",
                "max_abs_diff_in_se": part.abs_diff_in_se.max(),
                "mean: max_abs_diff_in_se": part.mean_abs_diff_in_se.max(),
                "min_ess_bulk": part.ess_bulk.min(),
                "max_rhat": part.rhat.max(),
                "n_over_0.5_se": int((part.abs_diff_in_se > MAX_SE).sum()),
                "n_ess_under_400": int((part.ess_bulk < MIN_ESS).sum()),
                "n_rhat_over_1.01": int((part.rhat > MAX_RHAT).sum()),
                "within_0.5_se": bool((part.abs_diff_in_se <= MAX_SE).all()),
                "ess_ok": bool((part.ess_bulk >= MIN_ESS).all()),
                "rhat_ok": bool((part.rhat <= MAX_RHAT).all()),
                "divergent": int(fits[backend]["n_divergent"].iloc[0]),
                "seconds": float(fits[backend]["seconds"].iloc[0]),
            }
        )
    out = pd.DataFrame(rows)
    out["pass"] = out["within_0.5_se"] & out.ess_ok & out.rhat_ok
    return out


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """Parameters down, back ends across: median, |diff|/SE (median, mean), ESS, R-hat."""
    out = table.loc[table.backend == table.backend.iloc[0], ["parameter", "lavaan", "lavaan_se"]]
    out = out.reset_index(drop=True)
    for backend, part in table.groupby("backend", sort=False):
        part = part.reset_index(drop=True)
        out[f"{backend} median"] = part.posterior_median
        out[f"{backend} \\|d\\|/SE"] = part.abs_diff_in_se
        out[f"{backend} mean \\|d\\|/SE"] = part.mean_abs_diff_in_se
        out[f"{backend} ESS"] = part.ess_bulk.round().astype(int)
        out[f"{backend} R-hat"] = part.rhat
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    args = parser.parse_args()
    fits, records, parts = {}, {}, []
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "hs.csv"
        ref = lavaan_reference(csv)
        for backend in args.backends:
            fit_out = Path(tmp) / f"{backend}.parquet"
            fits[backend], records[backend] = simstudy_fit(csv, fit_out, backend)
            parts.append(compare(ref, fits[backend], backend))
    table = pd.concat(parts, ignore_index=True)
    summary = verdict(table, records, fits)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / "compare_lavaan_hs.parquet", index=False)
    first = records[args.backends[0]]
    versions = first["versions"]
    command = "benchmarks/compare_lavaan_hs.py" + (
        "" if args.backends == list(BACKENDS) else " --backends " + " ".join(args.backends)
    )
    lines = [
        "# `simstudy fit` against lavaan (ML) on the Holzinger-Swineford CFA",
        "",
        f"Produced by `.venv/bin/python {command}` (simstudy {versions.get('simstudy')}, "
        f"commit {versions.get('simstudy_commit', '?')}; lavaan {ref.attrs['version']}).",
        "",
        f"Model `{SYNTAX}` (marker indicators: first loading of each factor fixed at 1), "
        "lavaan's `HolzingerSwineford1939` items x1-x9, 301 rows. simstudy at its defaults "
        f"(seed {first['seed']}, priors {first['priors']}, prior families "
        f"{first['structure'].get('prior_families')}); `bayes` is the compiled Gibbs sweep, "
        "`chees` and `nuts` the NumPyro model (`bayes_hmc`). lavaan's 21 free parameters "
        "(simstudy also fits the 9 intercepts, not compared). `|d|/SE`: |posterior median - "
        "lavaan's estimate| / lavaan's SE (the median: Mplus's and Blimp's point estimate, "
        "nearer the mode of a skewed posterior); `mean |d|/SE` the same for the posterior mean; "
        "ESS is bulk ESS. `simstudy fit` at default settings doubles its draws (at most twice) "
        "while min bulk ESS < 400 or R-hat > 1.01: the sampler column shows the draws it ended "
        "with.",
        "",
        f"Checks: every parameter's median within {MAX_SE} SE, bulk ESS >= {MIN_ESS:g}, "
        f"R-hat <= {MAX_RHAT}.",
        "",
        frame_markdown(summary),
        "",
        frame_markdown(wide(table)),
        "",
    ]
    (OUT / "compare_lavaan_hs.md").write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if summary["pass"].all() else 1)


if __name__ == "__main__":
    main()
