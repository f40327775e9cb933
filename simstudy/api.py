"""simstudy from Python: a study composed, checked, run, summarised and reported as the CLI does.

The CLI is a shell over the same functions (:mod:`.compose`, :mod:`.runstudy`, the
aggregator, the report), so a study run here writes the same files, refuses the same bad input
(:class:`~simstudy.errors.InputError`, naming the field, before any work) and resumes the same
way::

    import simstudy

    study = simstudy.Study.from_config(["study.reps=20", "results_dir=results"])
    outcome = study.run()              # the default study, on a local Dask cluster
    summary = study.aggregate()        # a pandas DataFrame of performance measures with MCSEs
    study.report()                     # report.html beside summary.parquet

Nothing is printed: :meth:`Study.run` takes a ``notify`` callable for the notices the CLI
writes to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simstudy.config_search import checked_dir, giving


def _tree(config_dir: str | Path | None) -> Path | None:
    return None if config_dir is None else checked_dir("config_dir", str(config_dir))


@dataclass(frozen=True)
class Study:
    """A validated study: its plan, and the config tree and overrides it was composed from.

    Build it with :meth:`from_config`. Attributes: ``plan`` (:class:`~simstudy.config.
    StudyPlan`), ``overrides``, ``config_dir`` (None: simstudy's own configs only).
    """

    plan: Any
    overrides: tuple[str, ...] = ()
    config_dir: Path | None = None

    @classmethod
    def from_config(
        cls, overrides: Sequence[str] = (), config_dir: str | Path | None = None
    ) -> Study:
        """Compose and validate a study, as ``simstudy [--config-dir DIR] run OVERRIDES``.

        Raises :class:`~simstudy.errors.InputError` (the CLI's exit 2) naming what is wrong.
        """
        from simstudy.compose import load_plan

        if isinstance(overrides, str):
            overrides = [overrides]
        tree = _tree(config_dir)
        with giving(tree):
            plan = load_plan(list(overrides))
        return cls(plan, tuple(overrides), tree)

    @property
    def name(self) -> str:
        """The study's name."""
        return self.plan.name

    @property
    def study_dir(self) -> Path:
        """Where its results are (``<results_dir>/<name>``)."""
        return Path(self.plan.study_dir)

    def conditions(self) -> Any:
        """The design's conditions: a DataFrame with ``condition_id`` and the factors' levels."""
        import pandas as pd

        from simstudy.design import condition_id
        from simstudy.runstudy import conditions_of

        return pd.DataFrame(
            [{"condition_id": condition_id(c), **c} for c in conditions_of(self.plan)]
        )

    def config(self) -> dict[str, Any]:
        """The composed, validated config (what ``simstudy show`` prints first)."""
        return self.plan.to_config()

    def run(self, notify: Callable[[str], None] | None = None) -> Any:
        """Run (or resume) the study; what happened (:class:`~simstudy.runstudy.RunOutcome`).

        Finished batches are kept and skipped, as with ``simstudy run``. ``notify``: called
        with each notice the CLI would write to the terminal (None: nothing said).
        """
        from simstudy.runstudy import run_study

        with giving(self.config_dir):
            if notify is None:
                return run_study(self.plan)
            return run_study(self.plan, notify)

    def replications(self) -> Any:
        """The stored replication records (a row per replication, estimator and estimand)."""
        from simstudy.store import read_replications

        return read_replications(self.study_dir)

    def aggregate(
        self,
        reference: str | None = None,
        policy: str | None = None,
        rhat_max: float | None = None,
        ess_min: float | None = None,
    ) -> Any:
        """Performance measures with MCSEs of the stored replications, as a DataFrame.

        Defaults are the study's ``aggregate`` settings; writes nothing (``simstudy
        aggregate`` writes the Parquet and tables; :meth:`run` does too).
        """
        from simstudy.aggregate import summarise_path
        from simstudy.errors import InputError
        from simstudy.runstudy import convergence_policy, design_of

        if policy not in (None, "all", "converged"):
            raise InputError("policy", policy, "all or converged")
        rule = convergence_policy(self.plan, kind=policy, rhat_max=rhat_max, ess_min=ess_min)
        return summarise_path(
            self.study_dir,
            reference=reference or self.plan.reference,
            policy=rule,
            design=design_of(self.plan),
        )

    def report(self) -> Path:
        """Write ``report.html`` (and ``report.md``, figures) beside ``summary.parquet``."""
        from simstudy.report import Limits, write_report

        return write_report(self.study_dir, Limits()).html

    def simulate(self, condition: int | str = 0, rep: int = 0) -> Any:
        """One replication's data set as a table (the columns ``simstudy fit`` reads).

        ``condition``: a condition_id or a position among :meth:`conditions`. The data are the
        study's own: the seed path every replication takes.
        """
        from simstudy.design import condition_id
        from simstudy.engine.replicate import _Rep, _simulate
        from simstudy.errors import InputError
        from simstudy.export import keyed_frame
        from simstudy.runstudy import conditions_of

        conditions = conditions_of(self.plan)
        ids = [condition_id(c) for c in conditions]
        if isinstance(condition, int) and not isinstance(condition, bool):
            if not 0 <= condition < len(conditions):
                raise InputError("condition", condition, f"a position 0..{len(conditions) - 1}")
            chosen = conditions[condition]
        elif condition in ids:
            chosen = conditions[ids.index(condition)]
        else:
            raise InputError("condition", condition, "one of " + ", ".join(ids))
        if not isinstance(rep, int) or not 0 <= rep < self.plan.reps:
            raise InputError("rep", rep, f"a replication 0..{self.plan.reps - 1}")
        with giving(self.config_dir):
            simulated = _simulate(self.plan, chosen, rep)
        if not isinstance(simulated, _Rep):
            raise RuntimeError(simulated[0]["error"])
        return keyed_frame(self.plan.model, simulated.dataset, simulated.base)

    def check(self, estimator: str) -> tuple[Any, list[str]]:
        """``simstudy check``: an estimator's fits to two simulated data sets, and its problems."""
        from simstudy.checkcmd import check_estimator

        study = Study.from_config(
            [*self.overrides, f"study.estimators=[{estimator}]"], self.config_dir
        )
        with giving(self.config_dir):
            return check_estimator(study.plan, estimator)


@dataclass(frozen=True)
class FitResult:
    """One estimator fitted to a data table (:func:`fit`).

    Attributes
    ----------
    summary
        A row per estimand: posterior mean, median, SD, interval, ESS, R-hat (a closed-form
        estimator: estimate as ``mean``, standard error as ``sd``, confidence interval), as
        ``simstudy fit`` writes it.
    posterior
        ArviZ InferenceData of the posterior draws (``posterior``: chain × draw per estimand;
        ``observed_data``: the table's columns); None for a closed-form estimator.
    warnings
        What ``simstudy fit`` warns of: unconverged chains, divergences, priors in conflict
        with the data, draws of both signs.
    plan
        The validated fit (model, estimator, sampler, priors as used).
    """

    summary: Any
    posterior: Any
    warnings: tuple[str, ...]
    plan: Any


def fit(
    overrides: Sequence[str],
    data: Any,
    estimator: str | None = None,
    seed: int = 0,
    level: float = 0.95,
    config_dir: str | Path | None = None,
    notify: Callable[[str], None] | None = None,
) -> FitResult:
    """Fit one estimator of a model to a data table, as ``simstudy fit`` does.

    ``overrides`` name the model (``model=NAME``, its syntax, priors, ``sampler.*``); ``data``
    is a pandas DataFrame or the path of a .csv or .parquet file (NaN where missing);
    ``estimator`` one of the model's (None: its first). The same checks refuse the same input
    (:class:`~simstudy.errors.InputError`, before anything compiles). Writes nothing.
    """
    import pandas as pd

    from simstudy.errors import InputError
    from simstudy.export import inference_data
    from simstudy.fitting import plan_fit, prepare_fit, run_fit
    from simstudy.userdata import read_table

    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file() or path.suffix not in (".csv", ".parquet"):
            raise InputError("data", str(path), "an existing .csv or .parquet file")
        frame, where = read_table(path, []), str(path)
    elif isinstance(data, pd.DataFrame):
        if data.empty:
            raise InputError("data", "an empty DataFrame", "a table with rows")
        frame, where = data, "the data table"
    else:
        raise InputError("data", type(data).__name__, "a pandas DataFrame or a .csv/.parquet path")
    if not 0 < level < 1:
        raise InputError("level", level, "a number in (0, 1)")
    with giving(_tree(config_dir)):
        plan, raw = plan_fit(list(overrides), frame, estimator, int(seed), float(level))
        prep = prepare_fit(plan, raw, list(overrides), frame, where)
        fitted = run_fit(prep, list(overrides), where, notify or (lambda text: None))
    posterior = None
    if fitted.draws is not None:
        columns = [c for c in prep.read.names if c in frame.columns]
        attrs = {"model": fitted.plan.model.name, "estimator": fitted.plan.estimator}
        posterior = inference_data(fitted.draws, frame[columns], attrs)
    return FitResult(fitted.table, posterior, tuple(fitted.warnings), fitted.plan)
