"""What the docs pages' scripts share: each fit's efficiency, and writing the page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simstudy.aggregate.mcmc import fit_convergence

#: A fit converged when every estimand reached these (the aggregator's defaults).
RHAT_MAX, ESS_MIN = 1.01, 400


def efficiency(rows: pd.DataFrame) -> pd.DataFrame:
    """Per estimator: fits, share converged, medians of min ESS, seconds and min ESS/s per fit."""
    ok = rows[rows["status"] == "ok"]
    conv = fit_convergence(ok, ["estimator"], RHAT_MAX, ESS_MIN)
    fits = ok.groupby(["estimator", "rep"]).agg(ess=("ess_bulk", "min"), s=("seconds", "first"))
    med = fits.assign(per_s=fits["ess"] / fits["s"]).groupby("estimator").median()
    return conv[["fits", "converged"]].join(med)


def write(page: Path, lines: list[str]) -> None:
    """Write the page's lines."""
    page.write_text("\n".join(lines))
    print(f"wrote {page}")
