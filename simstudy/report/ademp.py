"""The study's ADEMP summary (Morris, White & Crowther 2019).

Aims, data-generating mechanisms, estimands, methods and performance measures, with the
replications, seeds, software and run time.

Everything comes from ``manifest.json`` (the resolved config and the history of runs) and the
summary; a summary without a manifest (results of another program) says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from simstudy.report.document import Block, Heading, KeyValues, Paragraph, Table

#: What each measure of the summary is, in words (docs/measures.md has the formulas).
MEASURES = {
    "bias": "bias: mean estimate − truth",
    "rel_bias": "proportional bias: mean of (estimate − truth)/truth, with its 95% limits",
    "empse": "empirical SE: SD of the estimates",
    "modelse": "model SE: root mean of the squared SEs (posterior SDs)",
    "rel_error_modelse": "relative error of the model SE (%)",
    "mse": "mean squared error",
    "rmse": "root mean squared error",
    "coverage": "coverage of the intervals",
    "be_coverage": "bias-eliminated coverage",
    "power": "power (intervals excluding 0)",
    "width": "mean interval width",
    "failure_rate": "share of replications whose fit failed",
    "rmse_ratio": "RMSE ratio against the reference estimator (paired by replication)",
    "rel_precision": "relative precision against the reference (%)",
    "ess_ratio": "bulk-ESS ratio against the reference",
    "ess_per_second_ratio": "ESS-per-second ratio against the reference",
    "ess_bulk": "bulk ESS (mean; and minimum over fits)",
    "ess_tail": "tail ESS (mean; and minimum over fits)",
    "ess_per_second": "bulk ESS per second of fitting",
    "rhat_fail_rate": "share of fits with R-hat above the threshold",
    "rhat_max": "largest R-hat over fits",
    "unconverged_rate": "share of MCMC fits not converged on some estimand",
    "divergent_rate": "share of fits with a divergent transition",
    "seconds": "fit time per replication",
    "sbc_p_value": "simulation-based calibration: uniformity of ranks (chi-square p)",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value) or "–"
    return str(value)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def conditions_of(summary: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per condition of the summary: ``condition_id`` and its factor values, sorted."""
    cond = summary[[*factors, "condition_id"]].drop_duplicates("condition_id")
    return cond.sort_values([*factors, "condition_id"], kind="stable").reset_index(drop=True)


def varying(summary: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """The design factors with more than one level in the summary."""
    return [f for f in factors if summary[f].nunique(dropna=False) > 1]


def estimator_order(summary: pd.DataFrame, config: Mapping[str, Any] | None) -> list[str]:
    """Estimators in the study's order (else the summary's), the reference estimator first."""
    present = list(dict.fromkeys(summary["estimator"]))
    listed = list((config or {}).get("study", {}).get("estimators") or [])
    ordered = [e for e in listed if e in present] + [e for e in present if e not in listed]
    refs = [r for r in summary["reference"].dropna().unique() if r in present]
    return [*refs, *(e for e in ordered if e not in refs)]


def mcmc_estimators(summary: pd.DataFrame) -> list[str]:
    """Estimators with MCMC diagnostics (a bulk ESS) in the summary."""
    ess = summary[(summary["measure"] == "ess_bulk") & summary["value"].notna()]
    return sorted(set(ess["estimator"]))


def reference_of(summary: pd.DataFrame) -> str:
    """The reference estimator of the comparisons ('' when none)."""
    refs = [r for r in summary["reference"].dropna().unique() if r]
    return refs[0] if refs else ""


def ademp(
    manifest: Any,
    summary: pd.DataFrame,
    factors: Sequence[str],
    truth: pd.DataFrame | None = None,
) -> list[Block]:
    """The ADEMP section: aims, DGMs, estimands, methods, performance measures, and the run.

    Parameters
    ----------
    manifest
        The study's :class:`~simstudy.store.Manifest`, or None (results without one).
    summary
        The long summary (``summary.parquet``).
    factors
        Its design-factor columns.
    truth
        True values per condition × estimator × parameter (:class:`~.records.Digest`), if read.
    """
    config = manifest.config if manifest is not None else {}
    study = config.get("study", {})
    model = config.get("model", {})
    sampler = config.get("sampler", {})
    conds = conditions_of(summary, factors)
    blocks: list[Block] = [Heading(2, "Study design (ADEMP)")]
    if manifest is None:
        blocks.append(
            Paragraph(
                "No manifest.json beside the summary: the design below is what the summary "
                "itself shows (results of another program, or a moved summary)."
            )
        )

    blocks += [Heading(3, "Aims"), Paragraph(" ".join(str(study.get("aims") or "").split()))]
    if not study.get("aims"):
        blocks[-1] = Paragraph("The study config states no aims (study.aims).")

    blocks.append(Heading(3, "Data-generating mechanisms"))
    items = []
    if model:
        items.append(("model", str(model.get("name", "–"))))
        if model.get("params"):
            items.append(("parameters", _fmt(model["params"])))
        if model.get("structure"):
            items.append(("structure", _fmt(model["structure"])))
    levels = study.get("factors") or {f: sorted(summary[f].dropna().unique()) for f in factors}
    grid = math.prod(len(v) for v in levels.values()) if levels else 1
    for name, values in levels.items():
        items.append((f"factor {name}", _fmt(list(values))))
    if study.get("exclude"):
        items.append(("excluded combinations", _fmt(study["exclude"])))
    text = f"{len(conds)}"
    if levels and grid != len(conds):
        text += f" (of a {grid}-cell grid)"
    elif len(levels) > 1:
        text += " (" + " × ".join(str(len(v)) for v in levels.values()) + ", fully crossed)"
    items.append(("conditions", text))
    blocks.append(KeyValues(tuple(items)))

    blocks.append(Heading(3, "Estimands"))
    blocks += _estimands(summary, truth)

    blocks.append(Heading(3, "Methods"))
    mcmc = mcmc_estimators(summary)
    items = [("estimators", ", ".join(estimator_order(summary, config)))]
    if mcmc:
        items.append(("MCMC estimators", ", ".join(mcmc)))
    if sampler and mcmc:
        shown = {k: v for k, v in sampler.items() if k != "name"}
        items.append(("sampler", f"{sampler.get('name', '–')} ({_fmt(shown)})"))
    if model.get("priors"):
        items.append(("priors", _fmt(model["priors"])))
    if study.get("point_estimate"):
        items.append(("point estimate", f"posterior {study['point_estimate']}"))
    if study.get("level"):
        items.append(("interval level", _fmt(study["level"])))
    blocks.append(KeyValues(tuple(items)))

    blocks.append(Heading(3, "Performance measures"))
    present = set(summary["measure"])
    blocks.append(
        Table(
            "Measures in the summary (each with its Monte Carlo SE where one is defined)",
            ("measure", "what it is"),
            tuple((m, MEASURES[m]) for m in MEASURES if m in present),
        )
    )
    items = []
    ref = reference_of(summary)
    if ref:
        items.append(("reference estimator", ref))
    bias = summary[summary["measure"] == "bias"]
    excluded = int(bias.groupby(["condition_id", "estimator"])["n_excluded"].max().sum())
    agg = config.get("aggregate", {})
    policy = (
        f"converged fits only: {excluded} fits excluded from the measures"
        if excluded
        else "every successful fit (no exclusions)"
    )
    if agg:
        policy += (
            f"; the study config's aggregate settings: policy {agg.get('policy', 'all')}, "
            f"R-hat ≤ {_fmt(agg.get('rhat_max'))}, bulk ESS ≥ {_fmt(agg.get('ess_min'))} "
            "(simstudy aggregate --policy may have overridden them)"
        )
    items.append(("convergence policy", policy))
    items.append(
        (
            "Monte Carlo SE",
            "every measure with its MCSE (Morris, White & Crowther 2019, Table 6); "
            "docs/measures.md has the formulas",
        )
    )
    blocks.append(KeyValues(tuple(items)))

    blocks.append(Heading(3, "Replications, seeds, software and run time"))
    blocks += _run(manifest, summary)
    return blocks


def _estimands(summary: pd.DataFrame, truth: pd.DataFrame | None) -> list[Block]:
    params = list(dict.fromkeys(summary["parameter"]))
    if truth is None or truth.empty:
        return [Paragraph(f"{len(params)} estimands: " + ", ".join(params) + ".")]
    rows = []
    for p in params:
        t = truth[truth["parameter"] == p]
        lo, hi = t["truth"].min(), t["truth"].max()
        value = "–" if pd.isna(lo) else f"{lo:.4g}" if lo == hi else f"{lo:.4g} … {hi:.4g}"
        how = "varies by replication (prior draws)" if t["truth_varies"].any() else ""
        if not how and lo != hi:
            how = "varies by condition"
        rows.append((p, value, how))
    return [
        Table(
            f"{len(params)} estimands (lavaan-style names) and their true values",
            ("estimand", "truth", "note"),
            tuple(rows),
            numeric=frozenset({"truth"}),
        )
    ]


def _run(manifest: Any, summary: pd.DataFrame) -> list[Block]:
    if manifest is None:
        n = summary.loc[summary["measure"] == "failure_rate", "n_reps"]
        return [KeyValues((("replications", f"up to {int(n.max()) if len(n) else 0}"),))]
    study = manifest.config.get("study", {})
    software = dict(manifest.software)
    commit = software.pop("simstudy_commit", "")
    items = [
        ("study", manifest.study),
        ("replications per condition", _fmt(study.get("reps", "–"))),
        (
            "seed",
            f"{_fmt(study.get('seed', '–'))} (a replication's seed is a function of the study "
            "seed, the condition id and the replication index only)",
        ),
        ("config hash", manifest.config_hash),
        ("batch size", str(manifest.batch_size)),
        ("software", _fmt(software)),
        ("commit", commit or "unknown (not run from a git checkout)"),
    ]
    runs = manifest.runs
    if runs:
        total = sum(float(r.get("seconds") or 0) for r in runs)
        items.append(("run time", f"{_duration(total)} over {len(runs)} run(s)"))
    blocks: list[Block] = [KeyValues(tuple(items))]
    if runs:
        rows = [
            (
                str(r.get("started", "–")),
                _duration(float(r.get("seconds") or math.nan)),
                str(r.get("status", "–")),
                str(r.get("host", "–")),
                str(r.get("executor", "–")),
                str(r.get("fits", "–")),
                str(r.get("failed_fits", "–")),
            )
            for r in runs
        ]
        blocks.append(
            Table(
                "Runs that wrote to this directory (manifest.json)",
                ("started", "time", "status", "host", "executor", "fits", "failed"),
                tuple(rows),
                numeric=frozenset({"time", "fits", "failed"}),
            )
        )
    return blocks
