"""Do two runs of one study agree, replication by replication? (e.g. CPU against GPU).

Replications are matched on (condition, rep, estimator, parameter); the seeds must agree (same
study seed and design). For each estimator: rows matched, rows whose status differs, and the
largest and median absolute difference of the estimate and of the SE in units of the first
run's SE, and of the lower/upper limits likewise; for sampled estimators also how many fits
change their convergence verdict (R-hat <= 1.01 and bulk ESS >= 400 on the row).

Usage::

    .venv/bin/python benchmarks/compare_results.py results/latent_interaction OTHER/latent_interaction

Prints a markdown table; ``--out FILE`` also writes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parents[1]))

KEY = ["condition_id", "rep", "estimator", "parameter"]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per estimator: how far run ``b`` is from run ``a``, in ``a``'s SEs."""
    both = a.merge(b, on=KEY, suffixes=("_a", "_b"))
    if not (both["seed_a"] == both["seed_b"]).all():
        raise SystemExit("the runs' replication seeds differ: not the same study design and seed")
    rows = []
    for estimator, g in both.groupby("estimator", sort=False):
        se = g["se_a"].where(g["se_a"] > 0)
        diff = {
            c: ((g[f"{c}_b"] - g[f"{c}_a"]).abs() / se)
            for c in ("estimate", "se", "lower", "upper")
        }
        ok_a = (g["rhat_a"] <= 1.01) & (g["ess_bulk_a"] >= 400)
        ok_b = (g["rhat_b"] <= 1.01) & (g["ess_bulk_b"] >= 400)
        sampled = g["rhat_a"].notna().any()
        rows.append(
            {
                "estimator": estimator,
                "rows": len(g),
                "status_differs": int((g["status_a"] != g["status_b"]).sum()),
                **{f"max_{c}": float(np.nanmax(d)) for c, d in diff.items()},
                **{f"median_{c}": float(np.nanmedian(d)) for c, d in diff.items()},
                "verdict_differs": int((ok_a != ok_b).sum()) if sampled else None,
            }
        )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, a: Path, b: Path, n_a: int, n_b: int) -> str:
    lines = [
        f"`{a}` ({n_a:,} rows) against `{b}` ({n_b:,} rows), matched on condition, rep, "
        "estimator and parameter. Differences in units of the first run's SE: largest "
        "(median).",
        "",
        "| estimator | rows | status differs | estimate | SE | lower | upper | convergence verdict differs |",
        "| --- | ---: | ---: | --- | --- | --- | --- | ---: |",
    ]
    for r in table.itertuples():
        cells = [
            f"{getattr(r, 'max_' + c):.2g} ({getattr(r, 'median_' + c):.1g})"
            for c in ("estimate", "se", "lower", "upper")
        ]
        verdict = (
            "–"
            if r.verdict_differs is None or pd.isna(r.verdict_differs)
            else f"{int(r.verdict_differs)}"
        )
        lines.append(
            f"| {r.estimator} | {r.rows:,} | {r.status_differs} | "
            + " | ".join(cells)
            + f" | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    from simstudy.store import read_replications

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    a, b = read_replications(args.first), read_replications(args.second)
    text = markdown(compare(a, b), args.first, args.second, len(a), len(b))
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
