"""The report's figures as a paper can use them: properties of the matplotlib figures drawn.

Summaries are built by hand (no study is run), so each property is checked where it matters:
a bias of 0.02 beside one of -0.37, a coverage of 0.95 from 20 replications, estimators whose
lines coincide, levels declared out of alphabetical order.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch

from simstudy.aggregate.measures import interval, wilson_interval
from simstudy.report import figures as fig
from simstudy.report.document import Paragraph
from simstudy.report.running import running_keys, running_measures, running_plots

ESTIMATORS = ["e1", "e2", "e3"]
#: Declared out of alphabetical order: figures must follow the design, not sort.
LEVELS = {"N": [100, 50], "mechanism": ["MCAR", "MNAR", "MAR"]}
VARY = ["N", "mechanism"]
BIAS = {"p1": 0.02, "p2": -0.37}


def _summary(failed: float = 0.0, excluded: int = 0, coverage: float = 0.95) -> pd.DataFrame:
    """Every condition × estimator × estimand with bias, rel_bias, rmse, coverage, failures.

    Condition ``i`` (design order) gets bias ``BIAS[p] + i/1000`` so a plot's order can be read.
    """
    rows = []
    conditions = list(itertools.product(LEVELS["N"], LEVELS["mechanism"]))
    for i, (n, mech) in enumerate(conditions):
        for est, (par, bias) in itertools.product(ESTIMATORS, BIAS.items()):
            base = {
                "N": n,
                "mechanism": mech,
                "condition_id": f"c{i}",
                "estimator": est,
                "parameter": par,
                "n_reps": 20,
                "n_excluded": excluded,
                "reference": "",
                "note": "",
            }
            value = bias + i / 1000
            for measure, v, m in (
                ("bias", value, 0.01),
                ("rel_bias", value / 0.5, 0.02),
                ("rmse", abs(value) + 0.1, 0.01),
                ("coverage", coverage, np.sqrt(coverage * (1 - coverage) / 20)),
                ("failure_rate", failed, np.sqrt(failed * (1 - failed) / 20)),
                ("unconverged_rate", np.nan, np.nan),
            ):
                rows.append({**base, "measure": measure, "value": v, "mcse": m})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def factor() -> list[fig.Plot]:
    """The factor plots of :func:`_summary` (drawing them is the slow part: once)."""
    return fig.factor_plots(_summary(), VARY, ESTIMATORS, levels=LEVELS)


def _axes(plots, prefix: str) -> list:
    """The visible axes of the plots whose name starts with ``prefix``."""
    return [
        ax for p in plots if p.name.startswith(prefix) for ax in p.figure.axes if ax.get_visible()
    ]


def test_factor_plots_share_y_within_a_measure_and_add_rel_bias_and_rmse(factor):
    plots = factor
    names = {p.name for p in plots}
    assert {"bias_n_1", "rel_bias_n_1", "rmse_n_1", "coverage_mechanism_1"} <= names
    for measure in ("bias_", "rel_bias_", "rmse_", "coverage_"):
        axes = _axes(plots, measure)
        assert len(axes) >= 4
        assert len({ax.get_ylim() for ax in axes}) == 1, measure
    # the small bias is drawn on the scale of the large one
    low, high = _axes(plots, "bias_")[0].get_ylim()
    assert low < -0.37 and high > 0.02
    # relative bias in %
    assert _axes(plots, "rel_bias_")[0].get_ylim()[0] < -70


def _segments_y(ax) -> np.ndarray:
    """The y values of an axes' error bars."""
    ys = [
        np.asarray(seg)[:, 1]
        for c in ax.collections
        if isinstance(c, LineCollection)
        for seg in c.get_segments()
    ]
    return np.concatenate(ys) if ys else np.array([])


def test_coverage_intervals_stay_inside_0_1(factor):
    summary = _summary(coverage=0.95)
    # p ± 1.96 MCSE of 0.95 from 20 replications reaches above 1: the figures must not
    assert 0.95 + fig.Z95 * np.sqrt(0.95 * 0.05 / 20) > 1
    ys = np.concatenate([_segments_y(ax) for ax in _axes(factor, "coverage_")])
    assert len(ys) and ys.min() >= 0 and ys.max() <= 1
    assert ys.max() > 0.95  # there are bars
    nested = fig.nested_loop_plots(summary, VARY, ESTIMATORS, levels=LEVELS)
    bands = [
        patch
        for ax in _axes(nested, "nested_loop_coverage")
        for patch in ax.patches
        if isinstance(patch, StepPatch) and patch.get_fill()
    ]
    assert bands
    for patch in bands:
        values, _, baseline = patch.get_data()
        assert np.nanmax(values) <= 1 and np.nanmin(baseline) >= 0
    # the interval itself: Wilson, inside [0, 1] even at 0 and 1, not empty there
    lo, hi = wilson_interval(np.array([0.0, 0.95, 1.0]), 20)
    assert (lo >= 0).all() and (hi <= 1).all() and hi[0] > 0 and lo[2] < 1
    assert np.isclose(lo[1], 0.7639, atol=1e-4) and np.isclose(hi[1], 0.9911, atol=1e-4)
    bias_lo, bias_hi = interval("bias", 0.1, 0.01, 20)
    assert np.isclose(bias_lo, 0.1 - fig.Z95 * 0.01) and np.isclose(bias_hi, 0.1 + fig.Z95 * 0.01)


def test_nested_loop_tells_estimators_apart_and_follows_the_design_order():
    plots = fig.nested_loop_plots(_summary(), VARY, ESTIMATORS, levels=LEVELS)
    ax = _axes(plots, "nested_loop_bias")[0]
    markers = {line.get_label(): line for line in ax.get_lines() if line.get_label() in ESTIMATORS}
    assert set(markers) == set(ESTIMATORS)
    assert len({line.get_marker() for line in markers.values()}) == len(ESTIMATORS)
    steps = [p for p in ax.patches if isinstance(p, StepPatch) and not p.get_fill()]
    assert len({p.get_linestyle() for p in steps}) == len(ESTIMATORS)
    # conditions along x in design order: N 100 before 50, MCAR, MNAR, MAR (values rise by 1/1000)
    y = markers["e1"].get_ydata()
    assert np.allclose(np.diff(y), 0.001)
    # the figure legend has the same markers
    legend = fig_legend_markers(plots[0].figure)
    assert legend == {e: markers[e].get_marker() for e in ESTIMATORS}
    assert len(_axes(plots, "nested_loop_bias")) == 2 * len(BIAS)
    shared = {a.get_ylim() for a in _axes(plots, "nested_loop_bias")[::2]}
    assert len(shared) == 1


def fig_legend_markers(figure) -> dict[str, str]:
    """Estimator → marker of a figure's legend."""
    (legend,) = figure.legends
    return {
        text.get_text(): handle.get_marker()
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
        if isinstance(handle, Line2D)
    }


def test_factor_plots_follow_the_design_order_of_levels(factor):
    axes = next(p for p in factor if p.name == "bias_mechanism_1").figure.axes
    assert [t.get_text() for t in axes[0].get_xticklabels()] == LEVELS["mechanism"]
    titles = [a.get_title() for a in axes]
    assert titles[:2] == ["p1 | N=100", "p1 | N=50"]


def test_failure_figure_is_a_sentence_when_nothing_failed():
    out = fig.failure_plots(_summary(), VARY, VARY, ESTIMATORS)
    assert len(out) == 1 and isinstance(out[0], Paragraph)
    assert "no fit failed" in out[0].text and "no fit was excluded" in out[0].text
    # something failed: a figure, with only the panels that have something in them
    (plot,) = fig.failure_plots(_summary(failed=0.1), VARY, VARY, ESTIMATORS)
    assert isinstance(plot, fig.Plot)
    assert [a.get_title() for a in plot.figure.axes] == ["failed"]
    assert "not drawn: no fit was excluded" in plot.caption
    # its bars' intervals (Wilson) stay inside [0, 1]
    xs = [
        np.asarray(seg)[:, 0]
        for c in plot.figure.axes[0].collections
        if isinstance(c, LineCollection)
        for seg in c.get_segments()
    ]
    assert np.concatenate(xs).min() >= 0
    (both,) = fig.failure_plots(_summary(failed=0.1, excluded=2), VARY, VARY, ESTIMATORS)
    assert [a.get_title() for a in both.figure.axes] == ["failed", "excluded by the policy"]


def _intervals(reps: int = 30, seed: int = 3) -> dict[tuple[str, str, str], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = {}
    for est, shift in (("e1", 0.0), ("e2", 0.2)):
        estimate = 0.5 + shift + rng.normal(0, 0.3, reps)
        se = np.full(reps, 0.3)
        out[("c0", est, "p1")] = pd.DataFrame(
            {
                # replications in shuffled order: running means follow rep, not row order
                "rep": rng.permutation(reps),
                "estimate": estimate,
                "se": se,
                "lower": estimate - 1.96 * se,
                "upper": estimate + 1.96 * se,
                "truth": 0.5,
            }
        )
    return out


def test_running_measures_equal_a_direct_computation():
    intervals = _intervals()
    running = running_measures(intervals, points=40).set_index(["estimator", "measure", "n"])
    for est in ("e1", "e2"):
        rows = intervals[("c0", est, "p1")].sort_values("rep")
        for n in (2, 10, 30):
            first = rows.iloc[:n]
            err = first["estimate"] - first["truth"]
            bias = running.loc[(est, "bias", n)]
            assert np.isclose(bias["value"], err.mean())
            assert np.isclose(bias["mcse"], err.std(ddof=1) / np.sqrt(n))
            covered = ((first["lower"] <= 0.5) & (0.5 <= first["upper"])).mean()
            cov = running.loc[(est, "coverage", n)]
            assert np.isclose(cov["value"], covered)
            assert np.isclose(cov["mcse"], np.sqrt(covered * (1 - covered) / n))
            lo, hi = wilson_interval(covered, n)
            assert np.isclose(cov["lower"], lo) and np.isclose(cov["upper"], hi)
    # the figure draws those values: one line per estimator per measure
    plots = running_plots(intervals, list(intervals), {"c0": "N=100"}, ["e1", "e2"])
    (plot,) = plots
    bias_ax, cov_ax = plot.figure.axes
    line = next(ln for ln in bias_ax.get_lines() if ln.get_label() == "e2")
    expected = running.xs(("e2", "bias"), level=["estimator", "measure"])["value"]
    assert np.allclose(line.get_xdata(), expected.index) and np.allclose(line.get_ydata(), expected)
    assert bias_ax.get_ylabel() == "Bias" and cov_ax.get_ylabel() == "Coverage"


def test_running_keys_pick_the_pairs_furthest_from_nominal():
    summary = _summary()
    cov = summary["measure"] == "coverage"
    summary.loc[
        cov & (summary["condition_id"] == "c4") & (summary["parameter"] == "p2"), "value"
    ] = 0.5
    keys, total = running_keys(summary, ESTIMATORS, 0.95, max_pairs=1)
    assert total == 12 and keys == [("c4", e, "p2") for e in ESTIMATORS]


@pytest.mark.parametrize(
    ("lo", "hi"), [(80, 700), (300, 900), (150, 2500), (5, 40000), (12, 95), (950, 1100)]
)
def test_ess_log_axis_has_a_few_plain_labels_that_do_not_overlap(lo, hi):
    rng = np.random.default_rng(0)
    fits = pd.DataFrame(
        {
            "condition_id": "c",
            "estimator": "e",
            "rep": range(300),
            "failed": False,
            "rhat": 1.001,
            "ess": np.exp(rng.uniform(np.log(lo), np.log(hi), 300)),
            "divergent": False,
        }
    )
    (plot,) = fig.diagnostic_plots(fits, ["e"])
    figure = plot.figure
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    for ax, axis, horizontal in ((figure.axes[0], "x", True), (figure.axes[2], "y", False)):
        limits = ax.get_xlim() if horizontal else ax.get_ylim()
        which = ax.xaxis if horizontal else ax.yaxis
        ticks = [
            t
            for t in [*which.get_major_ticks(), *which.get_minor_ticks()]
            if t.label1.get_visible()
            and t.label1.get_text()
            and limits[0] <= t.get_loc() <= limits[1]
        ]
        labels = [t.label1.get_text() for t in ticks]
        assert 2 <= len(labels) <= 7, (axis, labels)
        assert all(float(text) == t.get_loc() for text, t in zip(labels, ticks, strict=True))
        boxes = sorted(
            (t.label1.get_window_extent(renderer) for t in ticks),
            key=lambda b: b.x0 if horizontal else b.y0,
        )
        for a, b in itertools.pairwise(boxes):
            assert (a.x1 < b.x0) if horizontal else (a.y1 < b.y0), (axis, labels)
