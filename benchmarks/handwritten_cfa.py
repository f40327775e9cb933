"""Fits by the retired hand-written ordinal CFA sampler, served to ``compare_engine.py``.

The hand-written CFA family (``simstudy/models/cfa``) was deleted after commit 18f6651; this
script runs in a checkout of that commit (``PYTHONPATH`` and working directory), in a process of
its own, so that ``compare_engine.py --models ordinal_cfa --handwritten PATH`` can let it take
turns with the compiled sweep of the current tree on the same data sets. It simulates the data
sets with the hand-written simulator (``conf/study/cfa_ordinal.yaml`` of that commit, marker
identification, N = 500, complete data), writes them to ``DATA`` (``.npz``: ``y`` and
``observed``, reps x N x p) and answers one line per request on stdin:

* ``warm``: fits the first data set once (its first call compiles); answers its seconds;
* ``fit R``: fits data set ``R`` with the key of seed ``R``; answers the posterior summary rows
  and the fit's seconds;
* ``quit``.

Answers are JSON on lines that start with :data:`PREFIX` (anything else on stdout is not
read). The first answer, before any request, is the structure, the priors, the items' order
and the commit.

    PYTHONPATH=CHECKOUT python benchmarks/handwritten_cfa.py --reps 8 --data FILE.npz
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import jax
import numpy as np

#: Marks the lines of stdout that are answers.
PREFIX = "@@ "


def answer(payload: dict) -> None:
    """One answer line on stdout."""
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, required=True)
    parser.add_argument("--data", required=True, help="where the data sets are written (.npz)")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args()

    from simstudy.cli import compose_raw
    from simstudy.config import SamplerSettings, plan_from_dict
    from simstudy.engine.replicate import (
        compiled_simulate,
        fit_estimator,
        key_from_seed,
        setting_of,
    )
    from simstudy.models import model_infos

    try:
        from simstudy.models.cfa import FAMILY, Layout
    except ImportError:
        raise SystemExit(
            "no simstudy.models.cfa here: PYTHONPATH must be a checkout of 18f6651"
        ) from None

    overrides = ["study=cfa_ordinal", "model.structure.identification=marker"]
    plan = plan_from_dict(compose_raw([*overrides, "study.estimators=[bayes]"]), model_infos())
    st = plan.model.structure
    cond = {"N": 500, "missing_rate": 0.0, "mechanism": "MAR"}
    sim = compiled_simulate(FAMILY, setting_of(plan, cond))
    datasets = [sim(jax.random.key(r)) for r in range(args.reps)]
    np.savez(
        args.data,
        y=np.stack([np.asarray(d["y"]) for d in datasets]),
        observed=np.stack([np.asarray(d["observed"]) for d in datasets]),
    )
    estimator = FAMILY.make_estimators(st)["bayes"]
    sampler = SamplerSettings(
        name="gibbs", chains=args.chains, warmup=args.warmup, draws=args.draws
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    answer(
        {
            "structure": st,
            "priors": dict(plan.model.priors),
            "items": list(Layout(st).items),
            "parameters": list(estimator.parameters),
            "commit": commit,
        }
    )

    def fit(rep: int, seed: int) -> tuple[list[dict], float]:
        t0 = time.perf_counter()
        summaries, n_div, _ = fit_estimator(
            estimator, datasets[rep], key_from_seed(seed), sampler, plan.model.priors, 0.95
        )
        seconds = time.perf_counter() - t0
        rows = [
            {
                "rep": rep,
                "parameter": k,
                "mean": float(s.estimate),
                "sd": float(s.se),
                "ess_bulk": float(s.ess_bulk),
                "rhat": float(s.rhat),
                "n_divergent": int(n_div),
            }
            for k, s in summaries.items()
        ]
        return rows, seconds

    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "warm":
            answer({"seconds": fit(0, 10**6)[1]})
        elif words[0] == "fit":
            rows, seconds = fit(int(words[1]), int(words[1]))
            answer({"rows": rows, "seconds": seconds})


if __name__ == "__main__":
    main()
