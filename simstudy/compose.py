"""A study's config composed from overrides, as ``simstudy`` and the Python API both do.

Hydra's compose API over the user's config tree and the package's (:mod:`.config_search`),
overrides checked plainly before Hydra sees them, model syntax quoted for Hydra's grammar,
``KEY={...}`` as a replacement of a whole mapping, and the sampler the estimators need picked
when none is named. :func:`load_plan` validates what was composed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simstudy.config_search import given_tree, group_files, search_dirs
from simstudy.errors import InputError


def config_dirs() -> list[Path]:
    """The config trees in search order: the user's, then the package's (``search_dirs``)."""
    return search_dirs(given_tree())


def _check_group_choices(dirs: Sequence[Path], overrides: Sequence[str]) -> None:
    """Name an unknown config-group option (``executor=foo``) before Hydra does, plainly."""
    for item in overrides:
        if item.startswith("~"):  # a deletion, e.g. ~model.structure.factors
            continue
        if "=" not in item:
            raise InputError(
                "override", item, "KEY=VALUE (e.g. study.reps=100 or executor=synchronous)"
            )
        key, value = item.split("=", 1)
        group = key.lstrip("+~")
        if any((d / group).is_dir() for d in dirs) and "." not in group and value:
            options = group_files(dirs, group)
            if value not in options:
                raise InputError(group, value, "one of " + ", ".join(options))


#: Keys whose values are free text (model syntax), quoted for Hydra's override grammar.
_TEXT_KEYS = ("model.syntax",)


def quote_text(override: str) -> str:
    """``model.syntax=y ~ x`` as Hydra reads it (``~``, ``(`` and ``|`` need quotes there)."""
    key, eq, value = override.partition("=")
    if not eq or key.lstrip("+") not in _TEXT_KEYS or value[:1] in ("'", '"'):
        return override
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"'


def compose(overrides: Sequence[str]) -> Any:
    """Compose ``config.yaml`` with command-line overrides (Hydra's compose API).

    Configs are searched in the user's tree first, then in the package's (:func:`config_dirs`).
    The working directory is never changed and nothing is written by Hydra.
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from simstudy.config_search import initialized

    dirs = config_dirs()
    _check_group_choices(dirs, overrides)
    overrides = [quote_text(o) for o in overrides]
    errors = (HydraException, OmegaConfBaseException)
    try:
        with initialized(dirs):
            try:
                return hydra_compose("config", overrides=list(overrides))
            except errors as first:
                replaced = replace_mappings(overrides)
                if replaced == list(overrides):
                    raise
                try:  # KEY={...}: the user replaces a whole mapping
                    return hydra_compose("config", overrides=replaced)
                except errors:
                    raise first from None
    except errors as exc:
        text = " ".join(str(exc).split())
        raise InputError(
            "overrides",
            " ".join(overrides),
            f"a valid Hydra override list ({text}). To replace a whole mapping, write "
            "KEY={a: 1, b: 2} for a KEY the config has",
        ) from None


def replace_mappings(overrides: Sequence[str]) -> list[str]:
    """``KEY={...}`` as Hydra's delete-then-add (``~KEY``, ``+KEY={...}``): a replacement.

    Hydra merges a mapping into the existing one, which the structured config refuses for new
    keys; a user who writes a whole mapping means it to replace the old one.
    """
    out: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key[:1] not in "+~" and value.lstrip().startswith("{"):
            out += [f"~{key}", f"+{key}={value}"]
        else:
            out.append(item)
    return out


def model_config(stem: str) -> dict[str, Any]:
    """The model config ``model/<stem>.yaml`` composed (its defaults list merged), as plain data."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose([f"model={stem}"]), resolve=True)["model"]


def compose_raw(overrides: Sequence[str], estimators: Sequence[str] | None = None) -> dict:
    """Compose to plain containers, with a sampler for every estimator that needs one.

    A model's MCMC estimators each run on one kind of sampler (``nuts`` or ``chees``, or
    ``gibbs``); when the user names no ``sampler=`` and the composed default does not fit
    them all, the one they need is composed instead, so that ``simstudy run study=sbc
    model=cfa`` needs no ``sampler=gibbs``. Estimators of a study that need different kinds
    (a Gibbs sweep beside a PyMC model) each get the settings of the kind they need under
    ``samplers.<estimator>`` unless the study's ``sampler`` serves them or the config gives
    them settings of their own.
    """
    from omegaconf import OmegaConf

    from simstudy.config import INTERCHANGEABLE, declared_info
    from simstudy.models import model_infos

    raw = OmegaConf.to_container(compose(overrides), resolve=True)
    info = declared_info(raw.get("model"), model_infos())
    if info is None:
        return raw
    study = raw.get("study") or {}
    every = False  # an SBC study's default: the posteriors on the study's sampler (no more)
    if estimators is None:
        estimators = study.get("estimators")
        if estimators is None and study.get("type") == "sbc":
            estimators, every = info.posteriors, True
    needs = {e: info.samplers.get(e) for e in estimators or [] if info.samplers.get(e)}
    needed = set(needs.values())
    composed = raw.get("sampler", {}).get("name")
    chosen = any(o.lstrip("+").startswith("sampler=") for o in overrides)
    more: list[str] = []
    if len(needed) == 1 and not chosen and composed not in INTERCHANGEABLE[next(iter(needed))]:
        more.append(f"sampler={next(iter(needed))}")
    elif len(needed) > 1 and not every:
        own = raw.get("samplers") or {}
        more += [
            f"+sampler@samplers.{e}={need}"
            for e, need in needs.items()
            if composed not in INTERCHANGEABLE[need] and e not in own
        ]
    if more:
        raw = OmegaConf.to_container(compose([*overrides, *more]), resolve=True)
    return raw


def load_plan(overrides: Sequence[str]) -> Any:
    """Compose and validate a study from overrides, and check that it can run here.

    :func:`~simstudy.config.check_runnable`: sizes the estimators can fit, and workers and
    memory this machine has (a stored manifest is not checked for them).
    """
    from simstudy.config import check_runnable, plan_from_dict
    from simstudy.models import model_infos

    plan = plan_from_dict(compose_raw(overrides), model_infos())
    check_runnable(plan, model_infos())
    return plan
