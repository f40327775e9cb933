"""`simstudy fit` of an ordinal three-factor CFA against lavaan's WLSMV on real data.

Two data sets (`--data`), one code path: R writes the items to CSV and fits lavaan, then
`simstudy fit` fits the same CSV.

- `bfi` (the default, so the bfi pages' commands stay as written): psych's `bfi` (Debian's
  `r-cran-psych`; 2800 respondents, six-point Likert items), nine neuroticism,
  conscientiousness and extraversion items, complete cases only (lavaan's listwise default),
  recoded 1..6 -> 0..5. Model `neuro =~ N1 + N2 + N3; consc =~ C1 + C2 + C3; extra =~ E3 + E4 +
  E5`, 6 categories. The nine fit far better than all 15 items of the three scales (see BFI).
- `hs1939`: lavaan's `HolzingerSwineford1939` (301 pupils, nine test scores), each item cut
  into 4 categories at its sample quartiles (R's `quantile`, type 7): the category is the
  number of its three quartiles the score exceeds, so a score tied with a quartile falls below
  it (`findInterval(x, q, left.open = TRUE)`). Model lavaan's classic `visual =~ x1 + x2 + x3;
  textual =~ x4 + x5 + x6; speed =~ x7 + x8 + x9`.

Every item ordered, probit, marker identification (each factor's first loading fixed at 1).
The page shows lavaan's fit measures, since under misfit the two estimators aim at different
values. Reference: lavaan's `cfa(model, data, ordered = items, parameterization = "theta")`
(WLSMV, its default for ordered items; theta: latent response residual variance 1, intercept
0, as simstudy's probit). Beside it, not gated, the full-information ML-probit of the same
model (`ordinal_ml.py`: adaptive Gauss-Hermite quadrature over the factors, BFGS; lavaan 0.6's
own `estimator = "MML"` is experimental and failed on these data), the value the posterior
aims at but for its priors and the likelihood's skew. No logit: lavaan has none here.
simstudy: `simstudy fit model=spec 'model.syntax=...' 'model.ordered={N1: 6, ...}' data=CSV`
at its default settings (priors on the data's scale, the compiled Gibbs sweep, 2 chains,
draws doubled while unconverged; `--draws N` names `sampler.draws=N`, one fixed length
instead). Writes `benchmarks/results/compare_lavaan_ordinal[_hs1939][_<factors>][_<tag>]
.{md,parquet}`: per common parameter (free loadings, thresholds, factor variances and
covariances) lavaan's estimate and SE, the ML-probit, the posterior mean and median, their
distances in lavaan SEs, the mean's from the ML-probit in its SEs, posterior SD / SE, bulk ESS
and R-hat. Exits 1 unless every loading and threshold's posterior mean is within 0.5 lavaan SE
(the factor (co)variances are shown, not gated; so are the median's and the ML's distances).

    .venv/bin/python benchmarks/compare_lavaan_ordinal.py [--data bfi|hs1939] [--draws N]
        [--factors extra ...] [--set KEY=VALUE ... --tag NAME]

`--factors` fits those factors' items only (a page of its own): one factor of three items is
just identified, so lavaan's WLSMV fits its polychorics exactly, and a difference there is not
model misfit. `--set` passes `simstudy fit` overrides (e.g. `model.priors.loading_sd=10`, a
diagnostic off the default settings) and `--tag` names their page.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ordinal_ml
from mdtable import frame_markdown

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
#: Three items per factor, all keyed alike: the 15 items of the three scales fit badly (lavaan:
#: CFI 0.87, RMSEA 0.115), and under misfit WLSMV and the full likelihood estimate apart.
BFI = {
    "neuro": ["N1", "N2", "N3"],
    "consc": ["C1", "C2", "C3"],
    "extra": ["E3", "E4", "E5"],
}
#: lavaan's classic Holzinger-Swineford model.
HS1939 = {
    "visual": ["x1", "x2", "x3"],
    "textual": ["x4", "x5", "x6"],
    "speed": ["x7", "x8", "x9"],
}


@dataclass(frozen=True)
class DataSet:
    """A data set's factors and categories, the R code that codes its items, its page's words.

    ``r_data`` sets ``raw`` (every row) and ``d`` (the complete rows of ``items``, coded
    0..categories-1); ``coding`` says how, on the page.
    """

    title: str
    factors: dict[str, list[str]]
    categories: int
    packages: tuple[str, ...]
    r_data: str
    coding: str
    page: str


DATA = {
    "bfi": DataSet(
        title="psych's `bfi`",
        factors=BFI,
        categories=6,
        packages=("lavaan", "psych"),
        r_data="suppressMessages(library(psych)); data(bfi); raw <- bfi\n"
        "d <- na.omit(raw[, items]) - 1",
        coding="six-point Likert, recoded 0..5",
        page="compare_lavaan_ordinal",
    ),
    "hs1939": DataSet(
        title="lavaan's `HolzingerSwineford1939`, items cut at their quartiles",
        factors=HS1939,
        categories=4,
        packages=("lavaan",),
        # a score tied with a quartile falls below it (left.open), as a cut at "<= q" would
        r_data="raw <- HolzingerSwineford1939\n"
        "d <- as.data.frame(lapply(raw[, items], function(x)\n"
        "  findInterval(x, quantile(x, c(0.25, 0.5, 0.75)), left.open = TRUE)))",
        coding="301 pupils' test scores, each cut into 4 categories at its sample quartiles "
        "(R's `quantile`, type 7): the category is the number of quartiles the score exceeds, "
        "a score tied with a quartile falling below it "
        "(`findInterval(x, quantile(x, c(.25, .5, .75)), left.open = TRUE)`)",
        page="compare_lavaan_ordinal_hs1939",
    ),
}


def items_of(factors: dict[str, list[str]]) -> list[str]:
    """The model's items, factor by factor."""
    return [item for items in factors.values() for item in items]


def syntax_of(factors: dict[str, list[str]]) -> str:
    """The model's lavaan syntax, one statement per factor."""
    return "; ".join(f"{f} =~ {' + '.join(items)}" for f, items in factors.items())


#: Largest |posterior mean - lavaan's estimate| / lavaan's SE of a loading or threshold.
MAX_SE = 0.5
#: Adaptive Gauss-Hermite nodes per factor of the ML-probit (and 2 fewer, its check).
ML_NODES = 7
R_CODE = """
suppressMessages(library(lavaan))
items <- c({items})
{data}
write.csv(d, "{csv}", row.names = FALSE)
fit <- cfa("{syntax}", data = d, ordered = items, estimator = "WLSMV",
  parameterization = "theta")
pe <- parameterEstimates(fit)
pe <- pe[pe$op %in% c("=~", "|", "~~") & pe$se > 0, ]
counts <- sapply(d, function(x) tabulate(x + 1, {k}))
cat(jsonlite::toJSON(list(lhs = pe$lhs, op = pe$op, rhs = pe$rhs, est = pe$est, se = pe$se,
  rows = nrow(d), rows_all = nrow(raw), min_count = min(counts),
  counts = as.list(as.data.frame(counts)),
  converged = lavInspect(fit, "converged"), estimator = lavInspect(fit, "options")$estimator,
  se_type = lavInspect(fit, "options")$se,
  fit = as.list(fitMeasures(fit, c("chisq.scaled", "df", "pvalue.scaled", "cfi.scaled",
    "rmsea.scaled", "srmr"))),
  versions = lapply(setNames(nm = c({packages})), function(p) as.character(packageVersion(p)))),
  digits = NA, auto_unbox = TRUE))
"""


def lavaan_reference(
    csv: Path, data: DataSet, factors: dict[str, list[str]]
) -> tuple[pd.DataFrame, dict]:
    """lavaan's WLSMV estimates and SEs of the free parameters, and the data's facts."""
    code = (
        R_CODE.replace("{csv}", str(csv))
        .replace("{data}", data.r_data)
        .replace("{syntax}", syntax_of(factors))
        .replace("{items}", ", ".join(f'"{i}"' for i in items_of(factors)))
        .replace("{k}", str(data.categories))
        .replace("{packages}", ", ".join(f'"{p}"' for p in data.packages))
    )
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
    ref = json.loads(out.stdout)
    frame = pd.DataFrame({k: ref.pop(k) for k in ("lhs", "op", "rhs", "est", "se")})
    return frame, ref


def ml_reference(csv: Path, factors: dict[str, list[str]], categories: int, ref: pd.DataFrame):
    """The ML-probit's estimates and SEs (``est``, ``se`` by lavaan's name) and its facts.

    Fitted at ML_NODES and ML_NODES - 2 adaptive quadrature nodes per factor from lavaan's
    estimates; the facts say how far apart the two are (the quadrature's error).
    """
    codes = pd.read_csv(csv)[items_of(factors)].to_numpy()
    lay = ordinal_ml.layout_of(factors, categories)
    start = dict(zip(ref["lhs"] + ref["op"] + ref["rhs"], ref["est"], strict=True))
    began = time.perf_counter()
    fits = [ordinal_ml.ml_probit(codes, lay, start, n) for n in (ML_NODES, ML_NODES - 2)]
    (est, se, facts), (coarse, _, _) = fits
    frame = pd.DataFrame({"est": est, "se": se})
    se_of = dict(zip(ref["lhs"] + ref["op"] + ref["rhs"], ref["se"], strict=True))
    facts["nodes_gap_in_se"] = max(abs(est[k] - coarse[k]) / se_of[k] for k in se_of)
    facts["seconds"] = time.perf_counter() - began
    return frame, facts


def simstudy_fit(
    csv: Path,
    out: Path,
    factors: dict[str, list[str]],
    categories: int,
    draws: int | None,
    settings: list[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """``simstudy fit`` of the ordinal CFA at its defaults.

    ``draws``: a fixed chain length; ``settings``: ``KEY=VALUE`` arguments off the defaults (a
    diagnostic): a dotted one as ``++KEY=VALUE``, a group choice (``sampler=nuts``) or a fit
    option (``estimator=bayes_hmc``) as written.
    """
    command = [
        str(Path(sys.executable).with_name("simstudy")),  # this interpreter's console script
        "fit",
        "model=spec",
        f"model.syntax={syntax_of(factors)}",
        "model.ordered={" + ", ".join(f"{i}: {categories}" for i in items_of(factors)) + "}",
        f"data={csv}",
        f"out={out}",
        *([] if draws is None else [f"sampler.draws={draws}"]),
        # ++: a dotted setting the config may lack; a group choice or fit option as written
        *(f"++{x}" if "." in x.partition("=")[0] else x for x in settings),
    ]
    subprocess.run(command, check=True)
    record = json.loads(pq.read_schema(out).metadata[b"simstudy.fit"])
    return pd.read_parquet(out).set_index("parameter"), record


def kind(op: str, lhs: str, rhs: str) -> str:
    """The parameter's group: loading, threshold, factor variance or factor covariance."""
    if op == "=~":
        return "loading"
    if op == "|":
        return "threshold"
    return "factor variance" if lhs == rhs else "factor covariance"


def our_name(lhs: str, op: str, rhs: str, names: pd.Index) -> str:
    """simstudy's name of a lavaan parameter; a covariance in either order of its variables."""
    name = f"{lhs}{op}{rhs}"
    if name not in names and op == "~~":
        name = f"{rhs}~~{lhs}"
    if name not in names:
        raise KeyError(f"lavaan's {lhs}{op}{rhs} is not among simstudy's parameters")
    return name


def compare(ref: pd.DataFrame, fit: pd.DataFrame, ml: pd.DataFrame) -> pd.DataFrame:
    """One row per lavaan parameter: the estimates, distances in SEs, SD / SE, ESS, R-hat.

    ``ml``: the ML-probit's ``est`` and ``se`` by lavaan's name (``ordinal_ml``), shown beside
    lavaan's WLSMV: the full likelihood's maximum, where the posterior sits but for its prior
    and its skew.
    """
    rows = []
    for r in ref.itertuples(index=False):
        ours = fit.loc[our_name(r.lhs, r.op, r.rhs, fit.index)]
        full = ml.loc[our_name(r.lhs, r.op, r.rhs, ml.index)]
        rows.append(
            {
                "parameter": f"{r.lhs}{r.op}{r.rhs}",
                "kind": kind(r.op, r.lhs, r.rhs),
                "lavaan": r.est,
                "lavaan_se": r.se,
                "ml_probit": full["est"],
                "ml_diff_in_se": (full["est"] - r.est) / r.se,
                "posterior_mean": ours["mean"],
                "posterior_median": ours["median"],
                "diff_in_se": (ours["mean"] - r.est) / r.se,
                "median_diff_in_se": (ours["median"] - r.est) / r.se,
                "mean_vs_ml_in_ml_se": (ours["mean"] - full["est"]) / full["se"],
                "sd_over_se": ours["sd"] / r.se,
                "ess_bulk": ours["ess_bulk"],
                "rhat": ours["rhat"],
            }
        )
    table = pd.DataFrame(rows)
    table["gated"] = table["kind"].isin(["loading", "threshold"])
    table["ok"] = ~table["gated"] | (table["diff_in_se"].abs() <= MAX_SE)
    return table


def by_kind(table: pd.DataFrame) -> pd.DataFrame:
    """Per parameter group: count, worst and median |distance|, SD / SE range, ESS, R-hat."""
    rows = []
    for name, part in table.groupby("kind", sort=False):
        d = part["diff_in_se"].abs()
        rows.append(
            {
                "kind": name,
                "n": len(part),
                "max \\|d\\|/SE": d.max(),
                "median \\|d\\|/SE": d.median(),
                "max median-\\|d\\|/SE": part["median_diff_in_se"].abs().max(),
                "max ML-\\|d\\|/SE": part["ml_diff_in_se"].abs().max(),
                "SD/SE min": part["sd_over_se"].min(),
                "SD/SE median": part["sd_over_se"].median(),
                "SD/SE max": part["sd_over_se"].max(),
                "min ESS": part["ess_bulk"].min(),
                "max R-hat": part["rhat"].max(),
                "gated": bool(part["gated"].iloc[0]),
                "n over 0.5 SE": int((d > MAX_SE).sum()),
                "ML n over 0.5 SE": int((part["ml_diff_in_se"].abs() > MAX_SE).sum()),
            }
        )
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", choices=list(DATA), default="bfi", help="the data set (default: bfi)"
    )
    parser.add_argument(
        "--draws", type=int, help="draws per chain, fixed (default: simstudy's, doubled as needed)"
    )
    parser.add_argument(
        "--factors", nargs="+", help="these factors only (a page of its own, named after them)"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="simstudy fit overrides, e.g. model.priors.loading_sd=10 (off the defaults; needs "
        "--tag)",
    )
    parser.add_argument("--tag", help="the page's name ends _TAG (a page of its own for --set)")
    args = parser.parse_args()
    data = DATA[args.data]
    unknown = sorted(set(args.factors or ()) - set(data.factors))
    if unknown:
        parser.error(f"--factors {unknown} not among {args.data}'s {list(data.factors)}")
    factors = {f: data.factors[f] for f in args.factors or data.factors}
    name = data.page + ("" if args.factors is None else "_" + "_".join(factors))
    if bool(args.set) != bool(args.tag):
        parser.error(
            "--set and --tag go together: settings off the defaults get a page of their own"
        )
    name += "" if args.tag is None else f"_{args.tag}"
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / f"{args.data}.csv"
        ref, facts = lavaan_reference(csv, data, factors)
        start = time.perf_counter()
        fit, record = simstudy_fit(
            csv, Path(tmp) / "fit.parquet", factors, data.categories, args.draws, args.set
        )
        facts["fit_wall_s"] = time.perf_counter() - start
        ml, ml_facts = ml_reference(csv, factors, data.categories, ref)
    table = compare(ref, fit, ml)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / f"{name}.parquet", index=False)
    extra = "" if args.data == "bfi" else f" --data {args.data}"
    extra += "" if args.factors is None else " --factors " + " ".join(args.factors)
    extra += "" if args.draws is None else f" --draws {args.draws}"
    extra += "" if not args.set else " --set " + " ".join(f"'{x}'" for x in args.set)
    extra += "" if args.tag is None else f" --tag {args.tag}"
    seconds = float(fit["seconds"].iloc[0])
    lines = page(table, facts, record, seconds, data, factors, extra, args.set, ml_facts)
    (OUT / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if table["ok"].all() else 1


def measure(value: object) -> str:
    """A fit measure in words: 3 decimals, an integer as is, NaN (jsonlite's "NaN") as a dash."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value:
        return f"{value:.3f}"
    return "–"  # undefined: a just-identified model's p-value


def page(
    table: pd.DataFrame,
    facts: dict,
    record: dict,
    seconds: float,
    data: DataSet,
    factors: dict[str, list[str]],
    options: str,
    settings: list[str] = (),
    ml_facts: dict | None = None,
) -> list[str]:
    """The markdown page's lines: the command, data, settings, verdict and tables."""
    passed = bool(table["ok"].all())
    s, versions = record["sampler"], record["versions"]
    gated = table[table["gated"]]
    command = "benchmarks/compare_lavaan_ordinal.py" + options
    worst = gated.loc[gated["diff_in_se"].abs().idxmax()]
    by_median = int((gated["median_diff_in_se"].abs() > MAX_SE).sum())
    ml_off = gated[gated["ml_diff_in_se"].abs() > MAX_SE]
    ml_worst = gated.loc[gated["ml_diff_in_se"].abs().idxmax()]
    ess, rhat = table["ess_bulk"].min(), table["rhat"].max()
    counts = "; ".join(f"{item} {'/'.join(map(str, n))}" for item, n in facts["counts"].items())
    r_versions = ", ".join(f"{p} {v}" for p, v in facts["versions"].items())
    lines = [
        f"# Ordinal CFA: `simstudy fit` against lavaan's WLSMV ({data.title})",
        "",
        f"Produced by `.venv/bin/python {command}` on "
        f"{datetime.now(UTC):%Y-%m-%d} (simstudy {versions.get('simstudy')}, commit "
        f"{versions.get('simstudy_commit', '?')}; {r_versions}).",
        "",
        f"Data: {data.title}, items {', '.join(items_of(factors))} ({data.coding}), "
        f"complete cases: {facts['rows']} of {facts['rows_all']} rows; rows per category "
        f"{counts} (the sparsest holds {facts['min_count']}). lavaan's fit measures: "
        + ", ".join(f"{k} {measure(v)}" for k, v in facts["fit"].items())
        + f". Model `{syntax_of(factors)}`, every item ordered "
        f"({data.categories} categories), probit, marker identification. lavaan: WLSMV "
        f"(estimates {facts['estimator']}, SEs {facts['se_type']}; converged: {facts['converged']}), "
        '`parameterization = "theta"`; lavaan fits no logit here, so the comparison is probit '
        "only. "
        "simstudy at its default settings"
        + ("" if not settings else " but " + ", ".join(f"`{x}`" for x in settings))
        + f": estimator {record['estimator']}, sampler {s['name']}"
        + (" (the compiled Gibbs sweep)" if s["name"] == "gibbs" else "")
        + ", seed "
        f"{record['seed']}, ended with {s['chains']} chains x ({s['warmup']} warm-up + "
        f"{s['draws']} draws) (at default settings `simstudy fit` doubles the draws, at most "
        "twice, while min bulk ESS < 400 or R-hat > 1.01; `--draws` fixes them), "
        f"{seconds:.0f} s sampling in the last run, {facts['fit_wall_s']:.0f} s for the "
        "whole `simstudy fit` (compiling and every run); priors "
        f"{record['priors']}, per parameter {sorted(set(record['priors_used'].values()))}.",
        "",
        "ML-probit (`ml_probit`; `benchmarks/ordinal_ml.py`): the full likelihood's maximum, "
        f"the factors integrated out by adaptive Gauss-Hermite quadrature ({ML_NODES} nodes "
        "per factor, centred and scaled at each row's posterior mode), BFGS from lavaan's "
        f"estimates: log likelihood {ml_facts['loglik']:.2f}, {ml_facts['iterations']} "
        f"iterations, largest |gradient| {ml_facts['max_gradient']:.1e} ({ml_facts['message']}), "
        f"smallest eigenvalue of the observed information {ml_facts['min_information_eigenvalue']:.3f}; "
        f"at {ML_NODES - 2} nodes the estimates move by at most "
        f"{ml_facts['nodes_gap_in_se']:.3f} lavaan SE; {ml_facts['seconds']:.0f} s for both. "
        "Under misfit WLSMV and the full likelihood aim at different values; the posterior "
        "aims at the full likelihood's, moved by its priors and, at a small N, by the "
        "likelihood's skew.",
        "",
        "`d/SE`: (posterior mean - lavaan's estimate) / lavaan's SE (`median d/SE` the same "
        "for the posterior median, `ml_diff_in_se` for the ML-probit); `mean_vs_ml_in_ml_se`: "
        "(posterior mean - ML-probit) / the ML-probit's SE (inverse observed information); "
        "`SD/SE`: posterior SD / lavaan's (robust) SE. "
        f"Gate: every loading and threshold within {MAX_SE} SE (posterior mean); factor "
        "(co)variances shown, not gated.",
        "",
        f"**{'PASS' if passed else 'FAIL'}**: {int((~gated['ok']).sum())} of {len(gated)} "
        f"loadings and thresholds beyond {MAX_SE} SE; the largest, {worst['parameter']}, at "
        f"{worst['diff_in_se']:+.2f} SE. By the posterior median (shown, not the gate): "
        f"{by_median} of {len(gated)} beyond {MAX_SE} SE. Chains: min bulk ESS {ess:.0f}, "
        f"max R-hat {rhat:.3f} over these parameters ("
        + (
            "converged"
            if ess >= 400 and rhat <= 1.01
            else "not converged: ESS < 400 or R-hat > 1.01"
        )
        + "). The ML-probit itself (shown, not gated) is beyond "
        f"{MAX_SE} lavaan SE of WLSMV for {len(ml_off)} of {len(gated)} "
        + (
            f"({', '.join(ml_off['parameter'])}; the largest, {ml_worst['parameter']}, at "
            f"{ml_worst['ml_diff_in_se']:+.2f} SE)."
            if len(ml_off)
            else f"(the largest, {ml_worst['parameter']}, at {ml_worst['ml_diff_in_se']:+.2f} SE)."
        ),
        "",
        frame_markdown(by_kind(table)),
        "",
        "Every parameter:",
        "",
        frame_markdown(table.drop(columns=["gated"])),
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
