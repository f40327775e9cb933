"""``simstudy report``: a study's results as one self-contained HTML file and markdown.

:func:`write_report` reads ``summary.parquet``, ``manifest.json`` and (streamed, a condition at
a time) the replication records of a study directory, and writes beside the summary:

- ``report.html``: ADEMP summary, figures (base64 PNG: bias, relative bias, RMSE and coverage
  against the design factors, zip plots, measures against replications, MCMC diagnostics and
  failures), performance tables with MCSEs and a convergence overview, in one file that needs
  no network;
- ``report.md``: the same text and tables, the figures linked;
- ``figures/<name>.png`` and ``.pdf``: every figure.

Sections are plain data (:mod:`~simstudy.report.document`) built by pure functions
(:mod:`.ademp`, :mod:`.tables`, :mod:`.figures`) and rendered by :mod:`.html` and :mod:`.markdown`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from simstudy.aggregate import summary_factors
from simstudy.aggregate.measures import KEYS, SUMMARY_COLUMNS
from simstudy.errors import InputError
from simstudy.report import figures as fig
from simstudy.report import html, markdown
from simstudy.report.ademp import ademp, conditions_of, estimator_order, mcmc_estimators, varying
from simstudy.report.document import Block, Figure, Heading, KeyValues, Paragraph
from simstudy.report.records import Digest, digest
from simstudy.report.residuals import PREFIX as RESIDUALS_PREFIX
from simstudy.report.residuals import residual_figures
from simstudy.report.running import running_keys, running_plots
from simstudy.report.stopping import read_stopping, stopping_blocks
from simstudy.report.tables import (
    convergence_summary,
    failure_table,
    fit_table,
    performance_tables,
    sbc_table,
    thresholds,
)
from simstudy.store import read_manifest

__all__ = ["ReportPaths", "read_summary", "report_blocks", "write_report"]

SUMMARY = "summary.parquet"
FIGURES_HEADING = "Bias, relative bias, RMSE and coverage"
#: Names of the figures a report writes (older ones of these names are removed on a rewrite).
_OURS = (
    "bias_",
    "rel_bias_",
    "rmse_",
    "coverage_",
    "running_",
    "nested_loop_",
    "zip_",
    "mcmc_diagnostics",
    "failures_",
    RESIDUALS_PREFIX,
)


@dataclass(frozen=True)
class ReportPaths:
    """What :func:`write_report` wrote, and how long it took."""

    html: Path
    markdown: Path
    figures: tuple[Path, ...]
    seconds: float


@dataclass(frozen=True)
class Limits:
    """How much a report shows: rows a table, panels a figure, figures a kind, zip plots.

    ``running_pairs``: the (condition, estimand) pairs drawn against replications.
    """

    max_rows: int = 200
    max_panels: int = 12
    max_pages: int = 4
    zip_reps: int = 100
    zip_panels: int = 16
    running_pairs: int = 4


def read_summary(study_dir: Path) -> pd.DataFrame:
    """The study's ``summary.parquet``; :class:`InputError` naming what is missing or wrong."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise InputError(
            "RESULTS_DIR",
            str(study_dir),
            "an existing study directory (results/<study>/, with summary.parquet)",
        )
    path = study_dir / SUMMARY
    if not path.is_file():
        raise InputError(
            "RESULTS_DIR",
            str(study_dir),
            f"a study directory with {SUMMARY} (there is none: `simstudy aggregate "
            f"{study_dir}` writes it from the replications)",
        )
    try:
        summary = pd.read_parquet(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError("summary", str(path), f"a readable Parquet file ({exc})") from None
    missing = [c for c in (*KEYS, *SUMMARY_COLUMNS) if c not in summary.columns]
    if missing:
        raise InputError(
            "summary",
            str(path),
            f"a summary written by simstudy aggregate (it lacks {', '.join(missing)})",
        )
    if summary.empty:
        raise InputError("summary", str(path), "a summary with at least one measure")
    for col in ("reference", "note"):
        summary[col] = summary[col].fillna("").astype(str)
    return summary


def report_blocks(
    summary: pd.DataFrame,
    manifest: object,
    records: Digest | None,
    limits: Limits = Limits(),
    stopping: Mapping[str, Any] | None = None,
    residuals: Sequence[Figure] = (),
) -> list[Block | fig.Plot]:
    """The report's blocks, each figure still a :class:`~.figures.Plot` (not yet written).

    ``residuals``: the figures of ``simstudy diagnose`` (:mod:`.residuals`), a section of
    their own when there are any.

    :func:`write_report` saves the plots (PNG and PDF) and puts their :class:`Figure` in place.
    """
    config = getattr(manifest, "config", None) or {}
    study = config.get("study", {})
    level = float(study.get("level") or 0.95)
    factors = summary_factors(summary)
    vary = varying(summary, factors)
    estimators = estimator_order(summary, config)
    mcmc = mcmc_estimators(summary)
    rhat_max, ess_min = thresholds(summary)
    # each factor's levels in the order the config declares them (figures' x axes and loops)
    levels = study.get("factors") or None
    blocks: list[Block | fig.Plot] = []

    blocks += ademp(manifest, summary, factors, records.truth if records else None)
    blocks += stopping_blocks(stopping)

    blocks.append(Heading(2, FIGURES_HEADING))
    blocks.append(
        Paragraph(
            "Bias, relative bias, RMSE and coverage of each estimand against each design factor "
            "that varies, with Monte Carlo 95% intervals (±1.96 MCSE; Wilson intervals for "
            "coverage), the panels of a measure on one y scale"
            + ("; a nested-loop plot shows every condition at once." if len(vary) > 1 else ".")
        )
    )
    blocks += fig.factor_plots(
        summary, vary, estimators, level, limits.max_panels, limits.max_pages, levels
    )
    blocks += fig.nested_loop_plots(
        summary, vary, estimators, level, max_pages=limits.max_pages, levels=levels
    )

    blocks.append(Heading(2, "Performance tables"))
    blocks.append(
        Paragraph(
            "Each figure with its Monte Carlo SE in parentheses; proportional bias in % with "
            "its 95% limits (± 1.96 MCSE). Every measure of every condition is in "
            "summary.parquet; markdown and LaTeX tables in tables/."
        )
    )
    blocks += performance_tables(
        summary, factors, records.truth if records else None, estimators, limits.max_rows
    )
    sbc = sbc_table(summary, factors, limits.max_rows)
    if sbc is not None:
        blocks += [Heading(3, "Simulation-based calibration"), sbc]

    blocks.append(Heading(2, "Coverage: zip plots"))
    if records is None:
        blocks.append(Paragraph("No replication records beside the summary: no zip plots."))
    else:
        total = int(
            (
                (summary["measure"] == "coverage")
                & summary["value"].notna()
                & (summary["n_reps"] > 0)
            ).sum()
        )
        conds = conditions_of(summary, factors)
        labels = {
            c["condition_id"]: fig.condition_label(c, vary) if vary else ""
            for c in conds.to_dict("records")
        }
        panels = fig.zip_panels(summary, level, limits.zip_panels)
        zips = fig.zip_plots(
            records.intervals,
            summary,
            panels,
            labels,
            level,
            limits.zip_reps,
            16,
            total,
        )
        excluded = int(summary.loc[summary["measure"] == "coverage", "n_excluded"].sum())
        if excluded:
            blocks.append(
                Paragraph(
                    "The zip plots show every successful fit; the coverage figures leave out "
                    f"the fits the convergence policy excluded ({excluded} rows)."
                )
            )
        blocks += zips

    blocks.append(Heading(2, "Monte Carlo convergence"))
    if records is None:
        blocks.append(Paragraph("No replication records beside the summary: no running measures."))
    else:
        keys, pairs = running_keys(summary, estimators, level, limits.running_pairs)
        blocks.append(
            Paragraph(
                "Bias and coverage as replications accumulate: where the line has settled and "
                "its band is narrow enough, the study ran enough replications."
            )
        )
        blocks += running_plots(records.intervals, keys, labels, estimators, level, total=pairs)

    blocks.append(Heading(2, "Convergence and failures"))
    fits = records.fits if records else None
    blocks.append(convergence_summary(summary, fits))
    blocks.append(fit_table(summary, factors, fits, estimators, limits.max_rows))
    if fits is not None:
        failed = failure_table(fits)
        if failed is not None:
            blocks.append(failed)
        blocks += fig.diagnostic_plots(fits, mcmc, rhat_max, ess_min)
    blocks += fig.failure_plots(summary, factors, vary, estimators, max_pages=2)

    if residuals:
        blocks.append(Heading(2, "Residual diagnostics"))
        blocks.append(
            Paragraph(
                "Residuals of the structural regression from imputed latent scores (simstudy "
                "diagnose), without and with the product term: curvature without it that is "
                "gone with it points to a latent interaction."
            )
        )
        blocks += residuals

    blocks.append(Heading(2, "Files"))
    blocks.append(
        KeyValues(
            (
                ("summary", "summary.parquet (every measure, long format)"),
                ("tables", "tables/*.md, *.tex (simstudy aggregate)"),
                ("figures", "figures/*.png, *.pdf (this report's figures)"),
                ("replications", "replications/condition=<id>/batch-*.parquet"),
                ("manifest", "manifest.json (config, versions, runs)"),
            )
            + (
                (("diagnostics", "diagnostics/residuals-*.png, *.pdf, *.parquet"),)
                if residuals
                else ()
            )
        )
    )
    return blocks


def write_report(study_dir: Path, limits: Limits = Limits()) -> ReportPaths:
    """Write ``report.html``, ``report.md`` and ``figures/`` beside ``summary.parquet``.

    Raises :class:`InputError` when ``study_dir`` is not a directory with a summary (or its
    summary or manifest is unreadable).
    """
    from simstudy import __version__

    started = time.monotonic()
    study_dir = Path(study_dir)
    summary = read_summary(study_dir)
    manifest = read_manifest(study_dir)
    study = (manifest.config.get("study", {}) if manifest else {}) or {}
    level = float(study.get("level") or 0.95)
    panels = fig.zip_panels(summary, level, limits.zip_panels)
    running, _ = running_keys(
        summary,
        estimator_order(summary, manifest.config if manifest else None),
        level,
        limits.running_pairs,
    )
    records = digest(
        study_dir,
        condition_ids=set(summary["condition_id"]),
        reps=study.get("reps"),
        panels=[*panels, *running],
    )
    directory = study_dir / "figures"
    blocks: list[Block] = [
        fig.save(b, directory) if isinstance(b, fig.Plot) else b
        for b in report_blocks(
            summary,
            manifest,
            records,
            limits,
            read_stopping(study_dir),
            residual_figures(study_dir, directory),
        )
    ]
    names = [b.name for b in blocks if isinstance(b, Figure)]
    written = [directory / f"{n}{s}" for n in names for s in (".png", ".pdf")]
    for old in directory.glob("*"):
        if old.suffix in (".png", ".pdf") and old.name.startswith(_OURS) and old not in written:
            old.unlink()
    name = manifest.study if manifest else study_dir.name
    title = f"Simulation study {name}"
    subtitle = (
        f"{study_dir.resolve()} · report written {time.strftime('%Y-%m-%d %H:%M')} by "
        f"simstudy {__version__} from summary.parquet ({len(summary)} rows)"
        + (f" and {records.conditions} conditions' replication records" if records else "")
    )
    html_path, md_path = study_dir / "report.html", study_dir / "report.md"
    html_path.write_text(html.render(title, subtitle, blocks), encoding="utf-8")
    md_path.write_text(markdown.render(title, subtitle, blocks), encoding="utf-8")
    return ReportPaths(html_path, md_path, tuple(written), time.monotonic() - started)
