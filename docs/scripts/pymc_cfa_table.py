"""Write docs/pymc_cfa.md from a finished cfa_compare study (docs/examples/pymc_cfa).

Usage::

    .venv/bin/simstudy --config-dir docs/examples/pymc_cfa run study=cfa_compare
    .venv/bin/python docs/scripts/pymc_cfa_table.py [results/cfa_compare] [docs/pymc_cfa.md]

Every number in the page comes from the study's replications and summary, and from one
lavaan fit (Rscript with lavaan, if installed) of replication 0's data set, which checks the
user module's ML estimator against lavaan's ML at its defaults.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from simstudy.aggregate.mcmc import fit_convergence
from simstudy.store import read_manifest, read_replications

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "pymc_cfa"
ESTIMATORS = {
    "bayes": "engine's Gibbs sweep",
    "pymc_cfa": "PyMC, non-centred (ChEES)",
    "pymc_cfa_centred": "PyMC, centred (ChEES)",
    "ml": "ML (user module)",
}
SAMPLED = ["bayes", "pymc_cfa", "pymc_cfa_centred"]
RHAT_MAX, ESS_MIN = 1.01, 400


def kind(parameter: str) -> str:
    """The parameter's kind, from its lavaan name."""
    if "=~" in parameter:
        return "loadings"
    if parameter.endswith("~1"):
        return "intercepts"
    left = parameter.partition("~~")[0]
    return "residual variances" if left.startswith("x") else "factor (co)variances"


def efficiency(rows: pd.DataFrame) -> list[str]:
    """Per sampled estimator: convergence, min ESS, seconds and min ESS per second per fit."""
    ok = rows[rows["status"] == "ok"]
    conv = fit_convergence(ok, [], RHAT_MAX, ESS_MIN).set_index("estimator")
    fits = ok.groupby(["estimator", "rep"]).agg(ess=("ess_bulk", "min"), s=("seconds", "first"))
    fits["per_s"] = fits["ess"] / fits["s"]
    med = fits.groupby("estimator").median()
    gibbs = med.loc["bayes", "per_s"]
    out = [
        "| estimator | fits | converged | median min ESS | median s per fit "
        "| median min ESS/s | vs Gibbs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for est in SAMPLED:
        c, m = conv.loc[est], med.loc[est]
        out.append(
            f"| `{est}` ({ESTIMATORS[est]}) | {int(c['fits'])} | {c['converged']:.0%} "
            f"| {m['ess']:.0f} | {m['s']:.2f} | {m['per_s']:.1f} | {m['per_s'] / gibbs:.3f}× |"
        )
    return out


def performance(summary: pd.DataFrame) -> list[str]:
    """Per estimator and kind: bias (largest with MCSE), coverage, RMSE ratio to the Gibbs."""
    s = summary.copy()
    s["kind"] = s["parameter"].map(kind)
    wide = s.pivot_table(
        index=["estimator", "kind", "parameter"], columns="measure", values="estimate"
    )
    mcse = s.pivot_table(index=["estimator", "kind", "parameter"], columns="measure", values="mcse")
    out = [
        "| estimator | kind | mean bias | largest bias (MCSE) | mean coverage "
        "| lowest coverage | mean RMSE ratio to `bayes` |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for est in ESTIMATORS:
        for what in ["loadings", "factor (co)variances", "intercepts", "residual variances"]:
            w, e = wide.loc[(est, what)], mcse.loc[(est, what)]
            worst = w["bias"].abs().idxmax()
            ratio = w["rmse_ratio"].mean() if "rmse_ratio" in w else float("nan")
            out.append(
                f"| `{est}` | {what} | {w['bias'].mean():+.3f} | {w.loc[worst, 'bias']:+.3f} "
                f"({e.loc[worst, 'bias']:.3f}) `{worst}` | {w['coverage'].mean():.3f} "
                f"| {w['coverage'].min():.3f} | {ratio:.3f} |"
            )
    return out


def converged_only(rows: pd.DataFrame) -> list[str]:
    """Bias and coverage of the PyMC fits that converged, beside all of them."""
    ok = rows[rows["status"] == "ok"].copy()
    by_fit = ok.groupby(["estimator", "rep"]).agg(rhat=("rhat", "max"), ess=("ess_bulk", "min"))
    good = by_fit[(by_fit["rhat"] <= RHAT_MAX) & (by_fit["ess"] >= ESS_MIN)].index
    ok["converged"] = [k in good for k in zip(ok["estimator"], ok["rep"], strict=True)]
    ok["err"] = ok["estimate"] - ok["truth"]
    ok["covered"] = (ok["lower"] <= ok["truth"]) & (ok["truth"] <= ok["upper"])
    out = [
        "| estimator | fits | mean |bias| (all fits) | mean |bias| (converged) "
        "| coverage (all) | coverage (converged) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for est in SAMPLED:
        e = ok[ok["estimator"] == est]
        c = e[e["converged"]]
        n_conv = c["rep"].nunique()

        def bias(frame: pd.DataFrame) -> float:
            return frame.groupby("parameter")["err"].mean().abs().mean()

        out.append(
            f"| `{est}` | {n_conv} of {e['rep'].nunique()} converged | {bias(e):.3f} "
            f"| {bias(c) if n_conv else float('nan'):.3f} | {e['covered'].mean():.3f} "
            f"| {c['covered'].mean() if n_conv else float('nan'):.3f} |"
        )
    return out


LAVAAN = """
library(lavaan)
d <- read.csv("{csv}")
m <- "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
f <- cfa(m, data = d, meanstructure = TRUE)
p <- parameterEstimates(f)
p <- p[!(p$op == "=~" & p$est == 1 & p$se == 0), ]
p$name <- ifelse(p$op == "~1", paste0(p$lhs, "~1"), paste0(p$lhs, p$op, p$rhs))
write.csv(p[, c("name", "est", "se")], "{out}", row.names = FALSE)
"""


def lavaan_check() -> list[str]:
    """The ML module against lavaan's cfa() on replication 0's data set (if R is here)."""
    import simstudy

    sys.path.insert(0, str(EXAMPLE))
    from cfa_estimators import ml_cfa

    study = simstudy.Study.from_config(["study=cfa_compare"], config_dir=EXAMPLE)
    data = study.simulate(0, 0)
    ours = pd.DataFrame(ml_cfa(data, 0.95), index=["est", "se"]).T
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = Path(tmp) / "d.csv", Path(tmp) / "p.csv"
        data.to_csv(csv, index=False)
        script = LAVAAN.replace("{csv}", str(csv)).replace("{out}", str(out))
        try:
            subprocess.run(["Rscript", "-e", script], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            return [f"(lavaan not run here: {exc})"]
        theirs = pd.read_csv(out).set_index("name")
    both = ours.join(theirs, rsuffix="_lavaan", how="inner")
    d_est = (both["est"] - both["est_lavaan"]).abs().max()
    d_se = ((both["se"] - both["se_lavaan"]).abs() / both["se_lavaan"]).max()
    return [
        f"On replication 0's data set, `ml_cfa` and lavaan's `cfa(..., meanstructure = TRUE)` "
        f"(ML, expected information) agree on all {len(both)} parameters: largest difference "
        f"of estimates {d_est:.1e}, of standard errors {d_se:.1e} (relative).",
    ]


def main() -> None:
    """Write the page."""
    study_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "cfa_compare"
    page = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "pymc_cfa.md"
    rows = read_replications(study_dir)
    summary = pd.read_parquet(study_dir / "summary.parquet")
    config = read_manifest(study_dir).config
    chees = config.get("sampler", {})
    gibbs = config.get("samplers", {}).get("bayes", {})
    reps = rows["rep"].nunique()
    failed = int((rows.groupby(["estimator", "rep"])["status"].first() != "ok").sum())
    lines = [
        "# A PyMC CFA beside the engine's Gibbs CFA and ML",
        "",
        "<!-- written by docs/scripts/pymc_cfa_table.py from the study's results -->",
        "",
        "The study a methodologist runs to choose an estimator for a three-factor CFA: the",
        "model as the PyMC literature writes it (`pm.LKJCholeskyCov` factor covariance with",
        "LKJ(1) correlations and half-normal SDs, non-centred factor scores",
        "`eta = z @ chol.T`, normal loadings and intercepts, half-normal residual SDs; first",
        "loading of each factor 1, as the engine's model), the same with centred scores",
        "(`eta ~ MvNormal(0, chol)`), the engine's Gibbs CFA (`conf/model/cfa.yaml`) and ML",
        "with expected-information standard errors, on the same replications. The two PyMC",
        "models and the ML estimator are a user's module",
        "([docs/examples/pymc_cfa/cfa_estimators.py](examples/pymc_cfa/cfa_estimators.py));",
        "no file under `simstudy/` names them. Run it with",
        "",
        "```",
        "simstudy --config-dir docs/examples/pymc_cfa run study=cfa_compare",
        "python docs/scripts/pymc_cfa_table.py results/cfa_compare docs/pymc_cfa.md",
        "```",
        "",
        "Design: N = 300 complete cases, standardized loadings 0.7, factor correlations 0.3,",
        f"{reps} replications (seed 30). The PyMC models run on simstudy's ChEES-HMC",
        f"({chees.get('chains')} chains × ({chees.get('warmup')} warm-up + "
        f"{chees.get('draws')} draws)), the Gibbs sweep on the Gibbs sampler "
        f"({gibbs.get('chains')} chains × ({gibbs.get('warmup')} + {gibbs.get('draws')}), "
        f"{gibbs.get('vectorize')} replications per program): each estimator its own sampler "
        "in one study (`samplers.bayes`, composed because the study's sampler is ChEES).",
        f"Failed fits: {failed}. Times are wall seconds per fit on this 2-core machine, both",
        "workers busy (compilation excluded).",
        "",
        "## MCMC efficiency",
        "",
        f"A fit converged when every estimand reached R-hat ≤ {RHAT_MAX} and bulk ESS ≥ {ESS_MIN}.",
        "",
        *efficiency(rows),
        "",
        "## Bias, coverage and RMSE",
        "",
        "All fits, per kind of parameter: the mean over its parameters, the largest absolute",
        "bias with its Monte Carlo SE, and the RMSE ratio to the Gibbs sweep (paired by",
        "replication; the mean over parameters).",
        "",
        *performance(summary),
        "",
        "## The PyMC fits that converged",
        "",
        *converged_only(rows),
        "",
        "## The ML module against lavaan",
        "",
        *lavaan_check(),
        "",
    ]
    page.write_text("\n".join(lines))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
