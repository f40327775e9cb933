"""What ``dvc.yaml`` needs besides the ``simstudy`` command: a params file and a metrics file.

``python -m simstudy.pipeline config [--config-dir DIR] --out FILE OVERRIDES...`` composes and
validates a study as ``simstudy run`` would and writes its resolved config (what the manifest
stores) as YAML, so that DVC tracks every value a run depends on as a parameter
(``dvc params diff`` names the one that changed). ``python -m simstudy.pipeline metrics
STUDY_DIR [--out FILE]`` writes a few performance measures of ``summary.parquet`` as JSON, the
format DVC metrics need (``dvc metrics show``). Exit code 2 on bad input, as ``simstudy``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simstudy.config_search import checked_dir, giving
from simstudy.errors import InputError

#: The measures of ``summary.parquet`` written as DVC metrics (all are in the summary).
METRICS = ("bias", "rmse", "coverage", "failure_rate")


def write_params(overrides: Sequence[str], out: Path) -> dict[str, Any]:
    """Compose and validate a study (``simstudy run``'s checks) and write its config as YAML.

    The config is :meth:`~simstudy.config.StudyPlan.to_config` of the plan: every value
    resolved (the sampler the estimators need included), as the manifest stores it.
    """
    import yaml

    from simstudy.compose import load_plan

    config = load_plan(overrides).to_config()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(
        "# The resolved config of the study dvc.yaml runs (written by simstudy.pipeline config;\n"
        "# edit params.yaml, not this file).\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    )
    os.replace(tmp, out)
    return config


def _label(row: Any, factors: Sequence[str]) -> str:
    return ",".join(f"{f}={row[f]}" for f in factors) or str(row["condition_id"])


def metrics(study_dir: Path, measures: Sequence[str] = METRICS) -> dict[str, Any]:
    """``{condition: {estimator: {parameter: {measure: value}}}}`` from ``summary.parquet``.

    A condition is named by its factor levels (``N=100,mechanism=MAR``); a value that is not
    a number (e.g. coverage of a fit without intervals) is ``null``.
    """
    import pandas as pd

    from simstudy.aggregate import summary_factors

    path = Path(study_dir) / "summary.parquet"
    if not path.is_file():
        raise InputError("STUDY_DIR", str(study_dir), "a study directory with a summary.parquet")
    summary = pd.read_parquet(path)
    factors = summary_factors(summary)
    rows = summary[summary["measure"].isin(measures)]
    out: dict[str, Any] = {}
    for _, row in rows.iterrows():
        value = float(row["value"])
        entry = out.setdefault(_label(row, factors), {}).setdefault(row["estimator"], {})
        entry.setdefault(row["parameter"], {})[row["measure"]] = (
            value if math.isfinite(value) else None
        )
    return out


def write_metrics(study_dir: Path, out: Path | None = None) -> Path:
    """Write :func:`metrics` as JSON (default ``STUDY_DIR/metrics.json``); its path."""
    out = Path(out) if out else Path(study_dir) / "metrics.json"
    values = metrics(study_dir)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simstudy.pipeline",
        description="The params and metrics files of dvc.yaml (README, 'DVC').",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    config = sub.add_parser("config", help="write a study's resolved config as a params file")
    config.add_argument("--config-dir", default=None, metavar="DIR", help="as simstudy's")
    config.add_argument("--out", required=True, metavar="FILE", help="the YAML file to write")
    config.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="as for simstudy run")
    found = sub.add_parser("metrics", help="write measures of summary.parquet as JSON")
    found.add_argument("study_dir", metavar="STUDY_DIR")
    found.add_argument("--out", default=None, metavar="FILE", help="default STUDY_DIR/metrics.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m simstudy.pipeline``."""
    from simstudy import cli

    args = _parser().parse_args(argv)
    try:
        if args.command == "config":
            tree = None if args.config_dir is None else checked_dir("--config-dir", args.config_dir)
            with giving(tree):
                config = write_params(args.overrides, Path(args.out))
            print(f"config of study {config['study']['name']}: {args.out}")
        else:
            print(f"metrics: {write_metrics(Path(args.study_dir), args.out)}")
    except InputError as exc:
        print(f"simstudy: error: {exc}", file=sys.stderr)
        return cli.EXIT_INPUT
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
