"""Write docs/latent_interaction.md from a finished latent_interaction study.

Usage::

    .venv/bin/simstudy run study=latent_interaction
    .venv/bin/python docs/scripts/latent_interaction_table.py [results/latent_interaction]

Every number in the page comes from the study's summary.parquet and replication files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from simstudy.aggregate.mcmc import fit_convergence
from simstudy.store import read_manifest, read_replications

STRUCTURAL = ["eta_m~eta_x", "eta_y~eta_x", "eta_y~eta_m", "eta_y~eta_x:eta_m"]
DERIVED = ["eta_y~eta_x@eta_m=-1SD", "eta_y~eta_x@eta_m=+1SD"]
Z = 1.959963984540054


#: The spec config's names (conf/model/latent_interaction.yaml) of the hand-written family's.
SPEC_NAMES = {"eta_y~eta_x@eta_m=-1SD": "slope_lo", "eta_y~eta_x@eta_m=+1SD": "slope_hi"}


def _get(summary: pd.DataFrame, n: int, est: str, par: str, measure: str) -> pd.Series | None:
    names = [par, SPEC_NAMES.get(par, par)]
    rows = summary[
        (summary["N"] == n)
        & (summary["estimator"] == est)
        & (summary["parameter"].isin(names))
        & (summary["measure"] == measure)
    ]
    return None if rows.empty else rows.iloc[0]


def _pct(row: pd.Series | None) -> str:
    if row is None or pd.isna(row["value"]):
        return "–"
    v, m = 100 * row["value"], 100 * row["mcse"]
    return f"{v:.1f} [{v - Z * m:.1f}, {v + Z * m:.1f}]"


def _num(row: pd.Series | None, digits: int = 3) -> str:
    if row is None or pd.isna(row["value"]):
        return "–"
    return f"{row['value']:.{digits}f} ({row['mcse']:.{digits}f})"


def _run_command(study: dict) -> str:
    """The ``simstudy run`` command of a study: ``study=latent_interaction`` and what differs."""
    from simstudy.cli import compose_raw

    default = compose_raw(["study=latent_interaction"])["study"]
    command = ".venv/bin/simstudy run study=latent_interaction"
    for key in ("name", "point_estimate", "reps", "estimators"):
        if key in study and study[key] != default.get(key):
            value = study[key]
            if isinstance(value, list):
                command += f' "study.{key}=[{",".join(value)}]"'
            else:
                command += f" study.{key}={value}"
    return command


def _commit() -> str:
    """The repository's commit (what produced the page), with a mark if the tree is dirty."""
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "simstudy", "conf"],
        cwd=root,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def _results_commit(manifest) -> str:
    software = getattr(manifest, "software", None) or {}
    return str(software.get("simstudy_commit", "unknown"))[:7]


def _model_of(manifest) -> str:
    """The spec config or the hand-written family the study fitted."""
    model = (manifest.config.get("model") or {}) if manifest else {}
    if "syntax" in model or "syntax" in (model.get("structure") or {}):
        return "the spec config `conf/model/latent_interaction.yaml` (the compiled Gibbs sweep)"
    return "the hand-written family `simstudy/models/latent_interaction/`"


def main(study_dir: Path, out: str = "") -> str:
    summary = pd.read_parquet(study_dir / "summary.parquet")
    records = read_replications(study_dir)
    manifest = read_manifest(study_dir)
    reps = manifest.config["study"]["reps"] if manifest else records["rep"].nunique()
    sampler = manifest.config["sampler"] if manifest else {}
    study_config = manifest.config["study"] if manifest else {}
    lines = [
        "# Latent interaction: the seeds' Monte Carlo design",
        "",
        f"Produced by `{_run_command(study_config)}` followed by",
        f"`.venv/bin/python docs/scripts/latent_interaction_table.py {study_dir}{out}`; every number "
        "below is read from",
        f"`{study_dir}/summary.parquet` and its replication files ({reps} replications per condition).",
        f"Sampler: {json.dumps(sampler)}. Code: commit {_commit()}; the results' commit "
        f"{_results_commit(manifest)} (their manifest).",
        f"Model: {_model_of(manifest)}.",
        f"Study `{study_config.get('name', study_dir.name)}`: estimators "
        f"{', '.join(study_config.get('estimators', []))}; point estimate of `bayes`: the posterior "
        f"{study_config.get('point_estimate', 'mean')}.",
        "",
        "Proportional bias in % with its 95% limits (±1.96 MCSE); coverage of the 95% interval",
        "with its MCSE; RMSE ratio of `fs_imputation` to `bayes`, paired by replication (delta-method MCSE).",
        "",
    ]
    for n in sorted(summary["N"].unique()):
        lines += [
            f"## N = {n}",
            "",
            "| parameter | bayes: prop. bias % [LCL, UCL] | bayes: coverage | fs_imputation: prop. bias % | fs_imputation: coverage | RMSE ratio fs_imp/bayes | sum_score_ols: prop. bias % | sum_score_ols: coverage |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for par in STRUCTURAL + DERIVED:
            cells = [
                _pct(_get(summary, n, "bayes", par, "rel_bias")),
                _num(_get(summary, n, "bayes", par, "coverage")),
                _pct(_get(summary, n, "fs_imputation", par, "rel_bias")),
                _num(_get(summary, n, "fs_imputation", par, "coverage")),
                _num(_get(summary, n, "fs_imputation", par, "rmse_ratio")),
                _pct(_get(summary, n, "sum_score_ols", par, "rel_bias")),
                _num(_get(summary, n, "sum_score_ols", par, "coverage")),
            ]
            alias = f" (`{SPEC_NAMES[par]}`)" if par in SPEC_NAMES else ""
            lines.append(f"| `{par}`{alias} | " + " | ".join(cells) + " |")
        lines.append("")
    bayes = records[(records["estimator"] == "bayes") & records["parameter"].isin(STRUCTURAL)]
    conv = fit_convergence(bayes, ["N"])
    lines += [
        "## Convergence of `bayes` (every structural slope of a fit)",
        "",
        "| N | fits | R-hat ≤ 1.01 and ESS bulk ≥ 400 | min ESS bulk | median of per-fit min ESS | max R-hat | mean fit seconds |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, row in conv.iterrows():
        lines.append(
            f"| {n} | {row['fits']:.0f} | {100 * row['converged']:.1f}% | {row['min_ess']:.0f} | {row['median_ess']:.0f} | {row['max_rhat']:.4f} | {row['seconds']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    study = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/latent_interaction")
    out = Path(__file__).resolve().parents[1] / "latent_interaction.md"
    if len(sys.argv) > 2:
        out = Path(sys.argv[2])
    text = main(study, f" {sys.argv[2]}" if len(sys.argv) > 2 else "")
    out.write_text(text)
    print(text)
    print(f"written: {out}")
