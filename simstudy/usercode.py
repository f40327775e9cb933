"""A user's own Python code, named in a config by a dotted path: found, imported, called.

``module.function`` (or ``package.module.function``) is looked for first in the user's config
tree (``--config-dir``/``$SIMSTUDY_CONFIG_DIR``: ``<tree>/module.py`` or
``<tree>/package/module.py``), then among installed packages. Found in the tree, its file is
recorded (the ``source`` a validated config carries), so that every process of a run, Dask's
workers included, imports the same file without the tree on its path. Nothing is imported
until a config names it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

from simstudy.config_search import PACKAGE_CONF, search_dirs
from simstudy.errors import InputError

#: The package name under which files from a config tree are imported.
USER_PACKAGE = "simstudy_user"


class UserCodeError(RuntimeError):
    """User code raised: the message holds its traceback (a failed replication's ``error``)."""


def user_trees() -> list[Path]:
    """The user's config trees in search order (none when only simstudy's own is used)."""
    from simstudy import config_search

    return [d for d in search_dirs(config_search.given_tree()) if d != PACKAGE_CONF]


def _file_in(tree: Path, module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (
        tree.joinpath(*parts[:-1], f"{parts[-1]}.py"),
        tree.joinpath(*parts, "__init__.py"),
    ):
        if candidate.is_file():
            return candidate.resolve()
    return None


def check_dotted(field: str, dotted: Any) -> str:
    """``dotted`` when it reads ``module.attribute``, else :class:`InputError` naming ``field``."""
    parts = dotted.split(".") if isinstance(dotted, str) else []
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise InputError(field, dotted, "a dotted path module.function (e.g. my_estimators.ols)")
    return dotted


def resolve(field: str, dotted: Any) -> str:
    """Where ``dotted`` (``module.attribute``) comes from: a file of the user's tree, or ``""``.

    Raises :class:`InputError` naming ``field`` when the name is malformed or nothing by that
    name can be imported.
    """
    module = check_dotted(field, dotted).rsplit(".", 1)[0]
    for tree in user_trees():
        found = _file_in(tree, module)
        if found is not None:
            return str(found)
    if importlib.util.find_spec(module.split(".")[0]) is None:
        trees = ", ".join(str(t) for t in user_trees()) or "none given (--config-dir)"
        raise InputError(
            field,
            dotted,
            f"a function in a module of your config tree ({trees}) or of an installed package",
        )
    return ""


def load(field: str, dotted: str, source: str = "") -> Callable[..., Any]:
    """The callable ``dotted`` names, imported from ``source`` (a file) or installed packages.

    Raises :class:`InputError` naming ``field`` when importing fails or the name is no
    callable; the message holds the import's own error.
    """
    module_name, attribute = dotted.rsplit(".", 1)
    try:
        if source:
            module = _import_file(module_name, source)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise InputError(
            field, dotted, f"a module that imports (importing it raised {why})"
        ) from None
    fn = getattr(module, attribute, None)
    if not callable(fn):
        raise InputError(field, dotted, f"the name of a function in module {module_name}")
    return fn


def _import_file(module_name: str, source: str) -> Any:
    """Import a file of the user's tree once per process and version of the file.

    Its name in ``sys.modules`` holds a hash of its path and modification time, so that two
    trees' files of one name stay apart and an edited file is imported afresh (a notebook).
    """
    stamp = f"{source}:{Path(source).stat().st_mtime_ns}"
    digest = hashlib.sha1(stamp.encode()).hexdigest()[:12]
    name = f"{USER_PACKAGE}.{module_name.replace('.', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def call(dotted: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; what it raises comes back as :class:`UserCodeError`.

    The error's message holds the traceback from the user's frame on.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None  # from the user's frame
        frames = traceback.format_exception(type(exc), exc, tb)
        raise UserCodeError(f"{dotted} raised:\n{''.join(frames)}") from exc


def takes_level(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes a second argument (the interval level) besides the data."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: data alone
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def estimates(dotted: str, out: Any, parameters: Sequence[str], level: float) -> dict[str, Any]:
    """What a user's estimator returned, as an :class:`~simstudy.contract.Estimate` per estimand.

    ``out`` maps every name of ``parameters`` to ``(estimate, se)``, ``(estimate, se, lower,
    upper)``, a mapping with those keys (``lower``/``upper`` optional) or an ``Estimate``;
    without limits, the normal interval at ``level``. Raises :class:`UserCodeError` saying
    what is wrong (a failed replication, never a crashed run).
    """
    from simstudy.contract import Estimate  # JAX only where estimators run, not in validation

    if not isinstance(out, Mapping):
        raise UserCodeError(
            f"{dotted} returned {type(out).__name__}; expected a mapping estimand -> "
            "(estimate, se) or (estimate, se, lower, upper)"
        )
    missing = [p for p in parameters if p not in out]
    extra = [str(k) for k in out if k not in parameters]
    if missing or extra:
        raise UserCodeError(
            f"{dotted} returned estimands {sorted(map(str, out))}; expected {list(parameters)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (not estimands of this estimator: {extra})" if extra else "")
        )
    z = NormalDist().inv_cdf(0.5 + level / 2)
    result = {}
    for name in parameters:
        value = out[name]
        if isinstance(value, Mapping):
            value = tuple(value.get(k) for k in ("estimate", "se", "lower", "upper"))
        try:
            numbers = [float(v) for v in value if v is not None]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) not in (2, 4):
            raise UserCodeError(
                f"{dotted} returned {value!r} for {name}; expected (estimate, se) or "
                "(estimate, se, lower, upper) as numbers"
            )
        est, se = numbers[:2]
        lower, upper = numbers[2:] if len(numbers) == 4 else (est - z * se, est + z * se)
        result[name] = Estimate(est, se, lower, upper)
    return result
