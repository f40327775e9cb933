"""What exists and what a study will do: the tables behind ``simstudy list`` and ``simstudy show``.

Config files are read one by one, not composed (``config.read_config_file``), and estimators
from the model registry, so listing needs no study to be valid. Every function returns rows
(dicts) or text; printing is the command line's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from simstudy.config import read_config_file
from simstudy.config_search import group_files
from simstudy.errors import InputError

#: What ``simstudy list`` can list.
TOPICS = ("models", "studies", "estimators", "samplers", "executors", "experiments")
#: The config group behind each topic that lists config files.
_GROUPS = {
    "studies": "study",
    "samplers": "sampler",
    "executors": "executor",
    "experiments": "experiment",
}


def _short(value: Any, width: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _study_model(raw: Mapping[str, Any]) -> str:
    """The model a study config picks (its ``override /model@...: NAME`` default)."""
    for entry in raw.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.replace("override", "", 1).strip().startswith("/model"):
                    return str(value)
    return "(the primary config's)"


def config_rows(dirs: Sequence[Path], group: str) -> list[dict[str, Any]]:
    """One row per config file of a group (``study``, ``sampler``, ...), the first tree's."""
    rows = []
    for path in group_files(dirs, group).values():
        raw = read_config_file(path)
        if group == "study":
            rows.append(
                {
                    "study": path.stem,
                    "model": _study_model(raw),
                    "estimators": ", ".join(raw.get("estimators") or []),
                    "factors": _short(
                        "; ".join(f"{k}={v}" for k, v in (raw.get("factors") or {}).items())
                    ),
                    "reps": raw.get("reps", ""),
                }
            )
        elif group == "experiment":
            rows.append({"experiment": path.stem, "use": f"+experiment={path.stem}"})
        else:
            settings = {k: v for k, v in raw.items() if k not in ("name", "defaults")}
            rows.append(
                {
                    group: path.stem,
                    "settings": _short(", ".join(f"{k}={v}" for k, v in settings.items()), 90),
                }
            )
    return rows


def estimator_kind(estimator: Any) -> str:
    """What an estimator is, in words: closed form, Gibbs sampler, NumPyro model, imputation."""
    from simstudy.engine.dispatch import kind_of

    return kind_of(estimator).label(estimator)


def _model_name(path: Path, models: Mapping[str, Path], seen: frozenset[Path] = frozenset()) -> str:
    """The model a ``model/`` config file configures.

    Its ``name``, or that of the model config it extends through its defaults list (e.g. a
    variant that changes only priors), looked up in ``models`` (``name -> file``).
    """
    raw = read_config_file(path)
    if "name" in raw:
        return str(raw["name"])
    for entry in raw.get("defaults") or []:
        base = models.get(entry) if isinstance(entry, str) else None
        if base is not None and base not in seen:
            return _model_name(base, models, seen | {path})
    return path.stem


def model_rows(dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per registered model: its configs, design factors, parameters, estimators."""
    from simstudy.models import MODELS
    from simstudy.spec import info as spec_info

    models = group_files(dirs, "model")
    configs: dict[str, list[str]] = {}
    for path in models.values():
        if not spec_info.is_spec(read_config_file(path)):  # a spec config has its own row
            configs.setdefault(_model_name(path, models), []).append(path.stem)
    rows = [
        {
            "model": name,
            "configs": ", ".join(f"model={c}" for c in configs.get(name, [])),
            "factors": ", ".join(family.info.factors),
            "parameters": _short(", ".join(family.info.params)),
            "estimators": ", ".join(family.info.estimators),
        }
        for name, family in MODELS.items()
    ]
    for path, raw, info, why in _spec_configs(models):
        rows.append(
            {
                "model": f"{raw.get('name')} (syntax)",
                # with its variants: configs that extend it through their defaults list
                "configs": ", ".join(
                    f"model={c}" for c in (path.stem, *configs.pop(str(raw.get("name")), []))
                ),
                "factors": ", ".join(info.factors) if info else f"invalid: {why}",
                "parameters": _short(", ".join(raw.get("params") or {})),
                "estimators": ", ".join(info.estimators if info else spec_info.ESTIMATORS),
            }
        )
    return rows


def _merged(path: Path, raw: Any) -> Any:
    """A variant model config (one with a defaults list) merged with what it extends."""
    if not isinstance(raw, Mapping) or not raw.get("defaults"):
        return raw
    from simstudy.compose import model_config

    try:
        return model_config(path.stem)
    except Exception:  # the models table says why it does not compose
        return raw


def _spec_configs(
    models: Mapping[str, Path], variants: bool = False
) -> Iterator[tuple[Path, Any, Any, str]]:
    """Each model config with a syntax: path, raw config, ModelInfo and why it is invalid.

    The ModelInfo is None (and the reason a sentence) when the config does not validate.
    ``variants``: a config that extends another through its defaults list counts too, merged
    (e.g. one that adds estimators of the user's own).
    """
    from simstudy.spec import info as spec_info

    for path in models.values():
        raw = read_config_file(path)
        if variants:
            raw = _merged(path, raw)
        if not spec_info.is_spec(raw) or not raw.get("syntax"):
            continue
        try:
            info = spec_info.model_info(
                str(raw.get("name")), spec_info.normalise(raw), raw.get("params") or {}
            )
        except InputError as exc:
            yield path, raw, None, str(exc)
            continue
        yield path, raw, info, ""


def _estimator_row(model: str, name: str, estimator: Any, sampler: str | None) -> dict[str, Any]:
    from simstudy.config import INTERCHANGEABLE

    return {
        "model": model,
        "estimator": name,
        "kind": estimator_kind(estimator),
        "samplers": " | ".join(INTERCHANGEABLE.get(sampler, ("-",))),
        "estimands": len(estimator.parameters),
    }


def estimator_rows(dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per (model, estimator): what it is, the samplers it runs on, its estimands.

    The hand-written families' estimators, then those of each valid model config with a syntax
    (named by its config).
    """
    from simstudy.models import MODELS
    from simstudy.spec import info as spec_info
    from simstudy.spec.family import family

    rows = []
    for model, fam in MODELS.items():
        for name in fam.info.estimators:
            sampler = fam.info.samplers.get(name)
            rows.append(_estimator_row(model, name, fam.estimators[name], sampler))
    for path, raw, info, _ in _spec_configs(group_files(dirs, "model"), variants=True):
        if info is None:  # the models table says why
            continue
        structure = spec_info.normalise(raw)
        built = family(str(raw.get("name")), structure).estimators_for(structure)
        for name in info.estimators:
            sampler = info.samplers.get(name)
            rows.append(_estimator_row(f"model={path.stem}", name, built[name], sampler))
    return rows


def rows_for(topic: str, dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of one ``simstudy list`` topic (one of :data:`TOPICS`) over the config trees."""
    if topic == "models":
        return model_rows(dirs)
    if topic == "estimators":
        return estimator_rows(dirs)
    return config_rows(dirs, _GROUPS[topic])


def cost(plan: Any, n_conditions: int) -> list[str]:
    """What running a study takes: fits, batches and compiled programs.

    Its time is ``show``'s time section (:mod:`simstudy.estimate_time`).
    """
    from simstudy.engine.replicate import compiled_units

    reps = plan.reps
    batches = n_conditions * -(-reps // plan.executor.batch_size)
    units = compiled_units(plan)
    return [
        f"conditions: {n_conditions}; replications: {n_conditions * reps} "
        f"({reps} per condition); fits: {n_conditions * reps * len(plan.estimators)} "
        f"({len(plan.estimators)} estimators)",
        f"batches: {batches} of up to {plan.executor.batch_size} replications; compiled programs: "
        f"{n_conditions * len(units)} (one per condition and fitting unit, each compiled once "
        "per worker process, or once per study with the persistent cache and compile_first)",
    ]


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as an aligned plain-text table (columns in the first row's order)."""
    if not rows:
        return "(none)"
    columns = list(rows[0])
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)
