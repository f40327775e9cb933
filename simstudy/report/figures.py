"""The report's figures, drawn with matplotlib's object API (Agg; no pyplot, no global state).

Each function returns :class:`Plot` objects (name, caption, matplotlib figure) and draws
nothing to disk; :func:`save` writes a plot as PNG and PDF under ``figures/``. Figures are
paged so that hundreds of conditions stay readable: at most ``max_panels`` panels a figure and
``max_pages`` figures of a kind, the captions saying what was left out.

- :func:`factor_plots`: bias and coverage against each design factor, ±1.96 MCSE error bars,
  one panel per estimand (and combination of the other factors), a line per estimator.
- :func:`nested_loop_plots`: all conditions in one nested-loop plot (Rücker & Schwarzer 2014).
- :func:`zip_plots`: the intervals behind a coverage figure (Morris, White & Crowther 2019).
- :func:`diagnostic_plots`: ESS and R-hat distributions per MCMC estimator.
- :func:`failure_plots`: failures, exclusions and unconverged fits per condition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import colors, ticker
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

from simstudy.report.document import Figure, slug
from simstudy.report.records import PanelKey

Z95 = 1.959963984540054
MAX_PANELS = 12
MAX_PAGES = 4
MEASURES = {"bias": "Bias", "coverage": "Coverage"}
COVERED, NOT_COVERED, LIMITS = "#4477aa", "#cc3311", "#ee9922"


@dataclass
class Plot:
    """A drawn figure, not yet written: its file name (no suffix), caption and figure."""

    name: str
    caption: str
    figure: MplFigure


def colours(estimators: Sequence[str]) -> dict[str, str]:
    """One colour per estimator, the same in every figure (matplotlib's tab10 cycle)."""
    cycle = mpl.colormaps["tab10"].colors
    return {e: colors.to_hex(cycle[i % len(cycle)]) for i, e in enumerate(estimators)}


def _level(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def condition_label(values: Mapping[str, object], vary: Sequence[str]) -> str:
    """``N=100, mechanism=MAR`` over the varying factors (``all`` when none varies)."""
    return ", ".join(f"{f}={_level(values[f])}" for f in vary) or "all"


def _pages(items: list, size: int, max_pages: int) -> tuple[list[list], int]:
    pages = [items[i : i + size] for i in range(0, len(items), size)]
    return pages[:max_pages], max(0, len(items) - size * max_pages)


def _grid(
    n: int, ncols: int = 4, w: float = 3.3, h: float = 2.7, title_lines: int = 1
) -> tuple[MplFigure, list]:
    """``n`` panels of ``w`` × ``h`` inches on a fixed layout (margins in inches).

    A fixed layout, not matplotlib's constrained one: that costs a third of drawing a figure.
    """
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    left, right, top, bottom = 0.75, 0.15, 0.65, 0.55
    wspace, hspace = 0.75, 0.55 + 0.15 * title_lines
    width = left + right + ncols * w
    height = top + bottom + nrows * h
    fig = MplFigure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=wspace / (w - wspace / ncols),
        hspace=hspace / (h - hspace / nrows),
    )
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _legend(fig: MplFigure, estimators: Sequence[str], colour: Mapping[str, str]) -> None:
    handles = [Line2D([], [], color=colour[e], marker="o", label=e) for e in estimators]
    loc = "outside upper center" if fig.get_layout_engine() else "upper center"
    fig.legend(handles=handles, loc=loc, ncols=min(len(handles), 6), frameon=False)


def _reference_line(ax, measure: str, level: float, n: float) -> None:
    if measure == "coverage":
        ax.axhline(level, color="0.3", lw=1, ls="--")
        if n and n > 0:
            band = Z95 * math.sqrt(level * (1 - level) / n)
            ax.axhspan(level - band, level + band, color="0.85", zorder=0)
    else:
        ax.axhline(0.0, color="0.3", lw=1, ls="--")


def _averaged(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of a measure over the other factors' levels; MCSE √(Σ MCSE²)/k (independent)."""
    g = rows.assign(_v=rows["mcse"] ** 2).groupby(by, sort=True, dropna=False)
    out = g.agg(value=("value", "mean"), _v=("_v", "sum"), k=("value", "size"))
    out["mcse"] = np.sqrt(out["_v"]) / out["k"]
    out["n_reps"] = g["n_reps"].sum()
    return out.reset_index()


def factor_plots(
    summary: pd.DataFrame,
    vary: Sequence[str],
    estimators: Sequence[str],
    level: float = 0.95,
    max_panels: int = MAX_PANELS,
    max_pages: int = MAX_PAGES,
) -> list[Plot]:
    """Bias and coverage against each varying design factor, with ±1.96 MCSE error bars.

    One panel per estimand, a line per estimator (dodged so the bars do not overlap). The other
    varying factors: a panel per estimand and combination of their levels when those fit on one
    figure (``max_panels``), else the measure averaged over their levels (MCSE √(Σ MCSE²)/k;
    the nested-loop plot shows every condition). Without a varying factor, one point per
    estimator. Coverage panels show the nominal level with its Monte Carlo band
    (±1.96 √(L(1−L)/n)).
    """
    colour = colours(estimators)
    params = list(dict.fromkeys(summary["parameter"]))
    plots = []
    for measure, title in MEASURES.items():
        data = summary[summary["measure"] == measure]
        if data.empty or data["value"].notna().sum() == 0:
            continue
        for factor in list(vary) or [None]:
            others = [f for f in vary if f != factor]
            combos = [()]
            if others:
                combos = [
                    tuple(c)
                    for c in data[others]
                    .drop_duplicates()
                    .sort_values(others)
                    .itertuples(index=False)
                ]
            averaged = bool(others) and len(params) * len(combos) > max_panels
            if averaged:
                data_f = _averaged(data, [factor, "estimator", "parameter"])
                combos, shown = [()], []
            else:
                data_f, shown = data, others
            panels = [(p, c) for p in params for c in combos]
            pages, left = _pages(panels, max_panels, max_pages)
            levels = sorted(data_f[factor].dropna().unique()) if factor else [None]
            for k, page in enumerate(pages, 1):
                fig, axes = _grid(len(page))
                for ax, (param, combo) in zip(axes, page, strict=True):
                    rows = data_f[data_f["parameter"] == param]
                    for f, v in zip(shown, combo, strict=True):
                        rows = rows[rows[f] == v]
                    _factor_panel(ax, rows, factor, levels, estimators, colour)
                    _reference_line(ax, measure, level, float(rows["n_reps"].median()))
                    label = condition_label(dict(zip(shown, combo, strict=True)), shown)
                    ax.set_title(param if not shown else f"{param} | {label}", fontsize=9)
                    ax.set_ylabel(title + (" (mean)" if averaged else ""), fontsize=8)
                _legend(fig, estimators, colour)
                against = f"against {factor}" if factor else "per estimator"
                name = f"{measure}_{slug(factor) if factor else 'all'}_{k}"
                how = ""
                if averaged:
                    how = f", averaged over the levels of {', '.join(others)}"
                elif others:
                    how = f" and level of {', '.join(others)}"
                caption = (
                    f"{title} {against}, one panel per estimand{how}; error bars ±1.96 MCSE"
                    + (
                        f"; dashed: nominal {level:g}, grey: its Monte Carlo band"
                        if measure == "coverage"
                        else "; dashed: 0"
                    )
                    + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
                    + (f"; {left} panels not drawn, see the tables" if left and k == 1 else "")
                    + "."
                )
                plots.append(Plot(name, caption, fig))
    return plots


def _factor_panel(ax, rows, factor, levels, estimators, colour) -> None:
    width = 0.5 / max(1, len(estimators))
    for i, est in enumerate(estimators):
        r = rows[rows["estimator"] == est]
        if factor:
            r = r.drop_duplicates(factor).set_index(factor).reindex(levels)
        if r.empty or r["value"].isna().all():
            continue
        x = np.arange(len(levels)) + (i - (len(estimators) - 1) / 2) * width
        ax.errorbar(
            x,
            r["value"].to_numpy(float),
            yerr=Z95 * r["mcse"].fillna(0).to_numpy(float),
            color=colour[est],
            marker="o",
            ms=4,
            capsize=2,
            lw=1.2,
            ls="-" if factor else "none",
        )
    ax.set_xticks(range(len(levels)), [_level(v) for v in levels] if factor else [""])
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set_xlabel(factor or "", fontsize=8)
    ax.yaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.tick_params(labelsize=8)


def nested_loop_plots(
    summary: pd.DataFrame,
    vary: Sequence[str],
    estimators: Sequence[str],
    level: float = 0.95,
    max_panels: int = 4,
    max_pages: int = MAX_PAGES,
) -> list[Plot]:
    """Nested-loop plots (Rücker & Schwarzer 2014) of bias and coverage: every condition.

    Conditions ordered by the varying factors (the first the outermost loop) along the x axis;
    a step line per estimator with its ±1.96 MCSE band, and the factors' levels as step lines
    beneath. Drawn only with two or more varying factors.
    """
    if len(vary) < 2:
        return []
    colour = colours(estimators)
    params = list(dict.fromkeys(summary["parameter"]))
    conds = summary[[*vary]].drop_duplicates().sort_values(list(vary)).reset_index(drop=True)
    edges = np.arange(len(conds) + 1) - 0.5
    plots = []
    for measure, title in MEASURES.items():
        data = summary[summary["measure"] == measure]
        if data.empty:
            continue
        pages, left = _pages(params, max_panels, max_pages)
        for k, page in enumerate(pages, 1):
            ratios = []
            for _ in page:
                ratios += [3.0, 0.35 * len(vary)]
            fig = MplFigure(figsize=(10, sum(ratios) * 0.9 + 0.6), layout="constrained")
            axes = fig.subplots(len(ratios), 1, gridspec_kw={"height_ratios": ratios})
            axes = np.atleast_1d(axes)
            for j, param in enumerate(page):
                ax, low = axes[2 * j], axes[2 * j + 1]
                rows = data[data["parameter"] == param]
                for est in estimators:
                    r = rows[rows["estimator"] == est].set_index(list(vary))
                    r = r.reindex(pd.MultiIndex.from_frame(conds))
                    if r["value"].isna().all():
                        continue
                    y = r["value"].to_numpy(float)
                    e = Z95 * r["mcse"].fillna(0).to_numpy(float)
                    ax.stairs(y, edges, baseline=None, color=colour[est], lw=1.4)
                    ax.stairs(
                        y + e, edges, baseline=y - e, fill=True, color=colour[est], alpha=0.15
                    )
                _reference_line(ax, measure, level, float(rows["n_reps"].median()))
                ax.set_xlim(-0.5, len(conds) - 0.5)
                ax.tick_params(axis="x", labelbottom=False, length=0)
                ax.set_title(f"{title}: {param}", fontsize=9)
                ax.set_ylabel(title, fontsize=8)
                ax.tick_params(labelsize=8)
                ax.sharex(low)
                for i, f in enumerate(vary):
                    levels = sorted(conds[f].unique())
                    code = conds[f].map({v: n for n, v in enumerate(levels)}).to_numpy(float)
                    y = len(vary) - 1 - i + 0.8 * code / max(1, len(levels) - 1)
                    low.stairs(y, edges, baseline=None, color="0.25", lw=1)
                    text = f"{f}: " + ", ".join(_level(v) for v in levels)
                    low.text(
                        -0.5, len(vary) - 1 - i + 0.4, text, fontsize=7, ha="right", va="center"
                    )
                low.set_yticks([])
                low.set_xlim(-0.5, len(conds) - 0.5)
                low.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
                low.set_ylim(-0.2, len(vary))
                low.set_xlabel("condition (nested loops over " + ", ".join(vary) + ")", fontsize=8)
                low.tick_params(labelsize=7)
                for side in ("top", "right", "left"):
                    low.spines[side].set_visible(False)
            _legend(fig, estimators, colour)
            caption = (
                f"Nested-loop plot of {title.lower()}: every condition along the x axis, "
                f"ordered by {', '.join(vary)} (outermost first); bands ±1.96 MCSE"
                + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
                + (f"; {left} estimands not drawn" if left and k == 1 else "")
                + "."
            )
            plots.append(Plot(f"nested_loop_{measure}_{k}", caption, fig))
    return plots


def zip_panels(summary: pd.DataFrame, level: float = 0.95, max_panels: int = 16) -> list[PanelKey]:
    """The coverage figures to draw zip plots of: all, or the ``max_panels`` furthest from nominal.

    Distance is ``|coverage − level| / √(level(1 − level)/n)``; ties keep the summary's order.
    """
    cov = summary[(summary["measure"] == "coverage") & summary["value"].notna()]
    cov = cov[cov["n_reps"] > 0]
    keys = list(zip(cov["condition_id"], cov["estimator"], cov["parameter"], strict=True))
    if len(keys) <= max_panels:
        return keys
    dist = (cov["value"] - level).abs() / np.sqrt(level * (1 - level) / cov["n_reps"])
    order = np.argsort(-dist.to_numpy(), kind="stable")[:max_panels]
    return [keys[i] for i in sorted(order)]


def zip_plots(
    intervals: Mapping[PanelKey, pd.DataFrame],
    summary: pd.DataFrame,
    panels: Sequence[PanelKey],
    labels: Mapping[str, str],
    level: float = 0.95,
    max_reps: int = 100,
    max_panels: int = 16,
    total: int | None = None,
) -> list[Plot]:
    """Zip plots (Morris, White & Crowther 2019, Fig. 4) of the intervals behind coverage.

    Each panel ranks a condition × estimator × estimand's intervals by the fractional centile
    of ``|z| = |estimate − truth| / SE`` (intervals that miss the truth at the top, in red),
    with the truth as a vertical line, the nominal level dashed and the Monte Carlo 95%
    interval of the coverage figure in orange. With more than ``max_reps`` replications,
    ``max_reps`` intervals evenly spaced in rank are drawn (centiles over all of them).
    """
    cov = summary[summary["measure"] == "coverage"].set_index(
        ["condition_id", "estimator", "parameter"]
    )
    keys = [k for k in panels if k in intervals and len(intervals[k])]
    pages, _ = _pages(keys, max_panels, math.ceil(len(keys) / max_panels) or 1)
    plots = []
    thinned = False
    for k, page in enumerate(pages, 1):
        fig, axes = _grid(len(page), ncols=4, w=3.3, h=2.8, title_lines=2)
        for ax, key in zip(axes, page, strict=True):
            rows = intervals[key]
            se = rows["se"].where(rows["se"] > 0)
            se = se.fillna((rows["upper"] - rows["lower"]) / (2 * Z95))
            z = ((rows["estimate"] - rows["truth"]) / se).abs().to_numpy(float)
            n = len(rows)
            centile = 100 * (pd.Series(z).rank(method="first").to_numpy() - 0.5) / n
            covered = (
                (rows["lower"] <= rows["truth"]) & (rows["truth"] <= rows["upper"])
            ).to_numpy()
            order = np.argsort(centile)
            if n > max_reps:
                order = order[np.unique(np.linspace(0, n - 1, max_reps).round().astype(int))]
                thinned = True
            lo, hi = rows["lower"].to_numpy(float), rows["upper"].to_numpy(float)
            lw = float(np.clip(120 / len(order), 0.6, 2.5))
            for mask, colour in ((covered, COVERED), (~covered, NOT_COVERED)):
                sel = order[mask[order]]
                ax.hlines(centile[sel], lo[sel], hi[sel], color=colour, lw=lw)
            ax.axvline(float(rows["truth"].mean()), color="0.2", lw=1)
            ax.axhline(100 * level, color="0.3", ls="--", lw=1)
            note = ""
            if key in cov.index:
                c, m = cov.loc[key, "value"], cov.loc[key, "mcse"]
                m = 0.0 if pd.isna(m) else m
                if not pd.isna(c):
                    for y in (c - Z95 * m, c + Z95 * m):
                        ax.axhline(100 * y, color=LIMITS, lw=1)
                    note = f": coverage {c:.3f} ({m:.3f})"
            cond, est, param = key
            where = labels.get(cond, cond)
            ax.set_title(f"{param} · {est}{note}" + (f"\n{where}" if where else ""), fontsize=8)
            ax.set_ylim(0, 100)
            ax.set_ylabel("centile of |z|", fontsize=8)
            ax.tick_params(labelsize=7)
        handles = [
            Line2D([], [], color=COVERED, label="covers the truth"),
            Line2D([], [], color=NOT_COVERED, label="misses the truth"),
            Line2D([], [], color=LIMITS, label="coverage ±1.96 MCSE"),
            Line2D([], [], color="0.3", ls="--", label=f"nominal {level:g}"),
        ]
        fig.legend(handles=handles, loc="upper center", ncols=4, frameon=False)
        omitted = (total or len(keys)) - len(keys)
        caption = (
            "Zip plots: each replication's interval, ranked by the fractional centile of |z| "
            "(|estimate − truth| / SE); vertical line: the truth"
            + (f"; at most {max_reps} intervals a panel, evenly spaced in rank" if thinned else "")
            + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
            + (
                f"; the {len(keys)} coverage figures furthest from nominal of "
                f"{total} (the rest in the tables)"
                if omitted > 0 and k == 1
                else ""
            )
            + "."
        )
        plots.append(Plot(f"zip_{k}", caption, fig))
    return plots


def _plain(axis, values: np.ndarray) -> None:
    """Plain numbers (200, 300) on a log axis instead of 2×10².

    Minor ticks are labelled at every multiple within a decade's range, else at 2 and 5 times
    a power of ten only (not crowded).
    """
    values = values[values > 0]
    narrow = len(values) == 0 or values.max() / values.min() < 10
    keep = tuple(range(1, 10)) if narrow else (2, 5)

    def minor(value: float, _: object) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return (
            f"{value:g}"
            if round(mantissa) in keep and abs(mantissa - round(mantissa)) < 1e-6
            else ""
        )

    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def diagnostic_plots(
    fits: pd.DataFrame,
    estimators: Sequence[str],
    rhat_max: float = 1.01,
    ess_min: float = 400.0,
) -> list[Plot]:
    """Distributions of each MCMC fit's smallest bulk ESS and largest R-hat, per estimator.

    Histograms (top) and box plots (bottom) over every successful fit of every condition, with
    the convergence thresholds dashed. Nothing when no estimator is MCMC.
    """
    ok = fits[~fits["failed"] & fits["estimator"].isin(estimators)]
    ok = ok[ok["ess"].notna() | ok["rhat"].notna()]
    present = [e for e in estimators if (ok["estimator"] == e).any()]
    if not present:
        return []
    colour = colours(estimators)
    fig = MplFigure(figsize=(11, 6.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for col, (what, label, threshold) in enumerate(
        (
            ("ess", "smallest bulk ESS of a fit", ess_min),
            ("rhat", "largest R-hat of a fit", rhat_max),
        )
    ):
        values = [ok.loc[ok["estimator"] == e, what].dropna().to_numpy(float) for e in present]
        allv = np.concatenate([v for v in values if len(v)]) if any(len(v) for v in values) else []
        hist = axes[0, col]
        if len(allv):
            if what == "ess":
                lo, hi = max(allv.min(), 1.0), max(allv.max(), 2.0)
                bins = np.geomspace(lo * 0.95, hi * 1.05, 30)
                hist.set_xscale("log")
            else:
                bins = np.linspace(min(allv.min(), 1.0), max(allv.max(), threshold) * 1.001, 30)
            for e, v in zip(present, values, strict=True):
                if len(v):
                    hist.hist(v, bins=bins, histtype="step", lw=1.5, color=colour[e], label=e)
        hist.axvline(threshold, color="0.3", ls="--", lw=1)
        hist.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        if what == "ess":
            _plain(hist.xaxis, np.asarray(allv, float))
        hist.set_xlabel(label, fontsize=9)
        hist.set_ylabel("fits", fontsize=9)
        hist.legend(fontsize=7)
        box = axes[1, col]
        shown = [(e, v) for e, v in zip(present, values, strict=True) if len(v)]
        if shown:
            parts = box.boxplot(
                [v for _, v in shown], tick_labels=[e for e, _ in shown], patch_artist=True
            )
            for patch, (e, _) in zip(parts["boxes"], shown, strict=True):
                patch.set_facecolor(colour[e])
                patch.set_alpha(0.5)
        if what == "ess":
            box.set_yscale("log")
            _plain(box.yaxis, np.asarray(allv, float))
        box.axhline(threshold, color="0.3", ls="--", lw=1)
        box.set_ylabel(label, fontsize=9)
        box.tick_params(axis="x", labelsize=8, labelrotation=15)
    caption = (
        f"MCMC diagnostics over {len(ok)} successful fits: each fit's smallest bulk ESS and "
        f"largest R-hat over its estimands; dashed: ESS {ess_min:g}, R-hat {rhat_max:g}."
    )
    return [Plot("mcmc_diagnostics", caption, fig)]


def failure_plots(
    summary: pd.DataFrame,
    factors: Sequence[str],
    vary: Sequence[str],
    estimators: Sequence[str],
    max_conditions: int = 30,
    max_pages: int = MAX_PAGES,
) -> list[Plot]:
    """Per condition and estimator: share failed, excluded by the policy, and not converged.

    Horizontal bars with ±1.96 MCSE where the share has one. With more conditions than the
    pages hold, those with the most failures, exclusions and unconverged fits are drawn.
    """
    group = [*factors, "condition_id", "estimator"]

    def by(measure: str, field: str, how: str = "first") -> pd.Series:
        part = summary[summary["measure"] == measure]
        return part.groupby(group, sort=False, dropna=False)[field].agg(how)

    per = pd.DataFrame(
        {
            "fail": by("failure_rate", "value"),
            "fail_mcse": by("failure_rate", "mcse"),
            "n_all": by("failure_rate", "n_reps"),
            "excluded": by("bias", "n_excluded", "max"),
            "unconv": by("unconverged_rate", "value"),
            "unconv_mcse": by("unconverged_rate", "mcse"),
        }
    ).reset_index()
    per["excl_rate"] = per["excluded"] / per["n_all"].where(per["n_all"] > 0)
    conds = per[[*factors, "condition_id"]].drop_duplicates("condition_id")
    conds = conds.sort_values([*factors, "condition_id"]).reset_index(drop=True)
    badness = per.assign(b=per[["fail", "excl_rate", "unconv"]].fillna(0).sum(axis=1))
    badness = badness.groupby("condition_id")["b"].sum()
    capacity = max_conditions * max_pages
    omitted = max(0, len(conds) - capacity)
    if omitted:
        worst = set(badness.sort_values(ascending=False, kind="stable").index[:capacity])
        conds = conds[conds["condition_id"].isin(worst)].reset_index(drop=True)
    pages, _ = _pages(list(conds.itertuples(index=False)), max_conditions, max_pages)
    colour = colours(estimators)
    panels = (
        ("fail", "fail_mcse", "failed"),
        ("excl_rate", None, "excluded by the policy"),
        ("unconv", "unconv_mcse", "not converged (MCMC)"),
    )
    plots = []
    for k, page in enumerate(pages, 1):
        ids = [c.condition_id for c in page]
        labels = [condition_label(c._asdict(), vary or factors) for c in page]
        height = 0.8 / max(1, len(estimators))
        fig = MplFigure(
            figsize=(12, 1.4 + 0.22 * len(ids) * max(1, len(estimators)) ** 0.6),
            layout="constrained",
        )
        axes = fig.subplots(1, 3, sharey=True)
        y = np.arange(len(ids))
        for ax, (col, err, title) in zip(axes, panels, strict=True):
            top = 0.0
            for i, est in enumerate(estimators):
                r = per[per["estimator"] == est].set_index("condition_id").reindex(ids)
                v = r[col].to_numpy(float)
                xerr = Z95 * r[err].fillna(0).to_numpy(float) if err else None
                top = max(top, float(np.nanmax(np.nan_to_num(v) + (0 if xerr is None else xerr))))
                offset = (i - (len(estimators) - 1) / 2) * height
                ax.barh(
                    y + offset,
                    np.nan_to_num(v),
                    height=height,
                    color=colour[est],
                    xerr=xerr,
                    error_kw={"lw": 0.8, "capsize": 1.5},
                )
            if not np.nan_to_num(per[col].to_numpy(float)).any():
                none = "no MCMC fits" if per[col].isna().all() else "none"
                ax.text(0.5, 0.5, none, transform=ax.transAxes, ha="center", color="0.4")
            ax.set_title(title, fontsize=9)
            ax.set_xlim(0, min(1.0, max(0.05, 1.1 * top)))
            ax.set_xlabel("share of replications", fontsize=8)
            ax.tick_params(labelsize=8)
        axes[0].set_yticks(y, labels)
        axes[0].invert_yaxis()
        _legend(fig, estimators, colour)
        caption = (
            "Failed fits, fits excluded by the convergence policy and MCMC fits not converged, "
            "per condition and estimator (share of replications; error bars ±1.96 MCSE)"
            + (f" (page {k} of {len(pages)})" if len(pages) > 1 else "")
            + (
                f"; {omitted} conditions with the fewest problems not drawn (see the tables)"
                if omitted and k == 1
                else ""
            )
            + "."
        )
        plots.append(Plot(f"failures_{k}", caption, fig))
    return plots


def save(plot: Plot, directory: Path, dpi: int = 100) -> Figure:
    """Write ``<name>.png`` and ``<name>.pdf`` under ``directory``; the PNG's bytes come back."""
    directory.mkdir(parents=True, exist_ok=True)
    png = directory / f"{plot.name}.png"
    plot.figure.savefig(png, dpi=dpi, metadata={"Software": None})
    # The layout is in inches, so the PNG's serves the PDF: not computed a second time.
    plot.figure.set_layout_engine("none")
    plot.figure.savefig(directory / f"{plot.name}.pdf", metadata={"CreationDate": None})
    return Figure(plot.name, plot.caption, png.read_bytes())


__all__ = [
    "Plot",
    "condition_label",
    "diagnostic_plots",
    "factor_plots",
    "failure_plots",
    "nested_loop_plots",
    "save",
    "zip_panels",
    "zip_plots",
]
