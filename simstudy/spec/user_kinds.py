"""The estimator kinds that run a user's own code: ``python`` (a function) and ``numpyro``.

A config names the user's function or model by a dotted path (:mod:`simstudy.usercode` finds
it in the user's config tree or an installed package); the option checks, the ``complete``
that records where it comes from, the model check and the builders are here, their entries in
:data:`simstudy.spec.estimators.KINDS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from simstudy.errors import InputError
from simstudy.spec.ir import ModelSpec


def function_name(name: str, value: Any) -> str:
    """Option ``function``/``model``: a dotted path (found and imported by :func:`completes`)."""
    from simstudy.usercode import check_dotted

    return check_dotted(name, value)


def source(name: str, value: Any) -> str:
    """Option ``source``: the file the function comes from, absolute (empty: find it)."""
    if not isinstance(value, str) or (value and not Path(value).is_file()):
        raise InputError(name, value, "the path of an existing Python file (or empty)")
    return str(Path(value).resolve()) if value else ""


def estimand_names(name: str, value: Any) -> list[str] | None:
    """Option ``parameters``: distinct estimand names (None: all of the model's)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise InputError(name, value, "a non-empty list of estimand names, e.g. ['y~x']")
    if not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise InputError(name, value, "distinct estimand names (text)")
    return list(value)


def attribute_name(name: str, value: Any) -> str | None:
    """Option ``derive``: a function name of the model's module (None: sites are estimands)."""
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        raise InputError(name, value, "the name of a function in the model's module (or none)")
    return value


def completes(option: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The ``complete`` of a kind whose ``option`` names a user's function: its ``source``.

    The file of the user's config tree it comes from (empty: an installed package), found and
    imported now, so that a bad name is an input error before any work.
    """

    def complete(options: dict[str, Any], field: str) -> dict[str, Any]:
        from simstudy import usercode

        where = f"{field}.{option}"
        if options[option] is None:
            raise InputError(where, None, "a dotted path module.function")
        if not options["source"]:
            options = {**options, "source": usercode.resolve(where, options[option])}
        fn = usercode.load(where, options[option], options["source"])
        derive = options.get("derive")
        if derive is not None and not callable(getattr(inspect.getmodule(fn), derive, None)):
            module = options[option].rsplit(".", 1)[0]
            raise InputError(f"{field}.derive", derive, f"the name of a function of {module}")
        return options

    return complete


def python_fits(spec: ModelSpec, options: Mapping[str, Any], field: str) -> None:
    """A user's function reports estimands of the model (their true values are known)."""
    known = spec.estimands()
    unknown = [n for n in options["parameters"] or () if n not in known]
    if unknown:
        raise InputError(
            f"{field}.parameters", unknown[0], "an estimand of the model: " + ", ".join(known)
        )


def build_python(spec, lay, families, options, built) -> Any:
    """A user's function of the replication's data table (closed form to the engine)."""
    from simstudy import usercode
    from simstudy.contract import ClosedFormEstimator
    from simstudy.spec.dgm import dataset_table

    dotted = options["function"]
    fn = usercode.load("function", dotted, options["source"])
    parameters = tuple(options["parameters"] or spec.estimands())
    takes_level = usercode.takes_level(fn)

    def fit(dataset, level):
        table = dataset_table(dataset, spec)
        out = (
            usercode.call(dotted, fn, table, level)
            if takes_level
            else usercode.call(dotted, fn, table)
        )
        return usercode.estimates(dotted, out, parameters, level)

    return ClosedFormEstimator("python", fit, parameters)


def _derive(dotted: str, module: Any, name: str | None, parameters: tuple[str, ...]):
    """``samples -> draws`` of the estimands: the user's ``derive`` (or the sites as named)."""
    from simstudy import usercode

    user_derive = getattr(module, name) if name else None

    def derive(samples):
        out = usercode.call(dotted, user_derive, samples) if user_derive else samples
        missing = [p for p in parameters if p not in out]
        if missing:
            raise usercode.UserCodeError(
                f"{dotted}: no draws of {missing} (name the variables so, or give derive:)"
            )
        return {p: out[p] for p in parameters}

    return derive


def build_numpyro(spec, lay, families, options, built) -> Any:
    """A user's NumPyro model of the data table's columns, run by the project's ChEES or NUTS."""
    import jax.numpy as jnp
    import numpy as np

    from simstudy import usercode
    from simstudy.contract import SampledEstimator
    from simstudy.spec.dgm import dataset_table

    dotted = options["model"]
    user_model = usercode.load("model", dotted, options["source"])
    parameters = tuple(options["parameters"] or spec.estimands())

    def model(**columns):
        return usercode.call(dotted, user_model, **columns)

    def data(dataset, priors):
        table = dataset_table(dataset, spec)
        return {c: jnp.asarray(table[c].to_numpy(np.float32)) for c in table.columns}

    derive = _derive(dotted, inspect.getmodule(user_model), options["derive"], parameters)
    return SampledEstimator("numpyro", model, data, derive, parameters)


def build_pymc(spec, lay, families, options, built) -> Any:
    """A user's PyMC model of the data table, its log density run by the project's samplers."""
    import jax.numpy as jnp

    from simstudy import usercode
    from simstudy.contract import SampledEstimator
    from simstudy.pymcmodel import PymcModel
    from simstudy.spec.dgm import dataset_table

    dotted = options["model"]
    build = usercode.load("model", dotted, options["source"])
    parameters = tuple(options["parameters"] or spec.estimands())
    model = PymcModel(dotted, build)

    def data(dataset, priors):
        arrays = model.data(dataset_table(dataset, spec))
        return {k: jnp.asarray(v) for k, v in arrays.items()}

    derive = _derive(dotted, inspect.getmodule(build), options["derive"], parameters)
    return SampledEstimator("pymc", model, data, derive, parameters)


def pymc_installed(spec: ModelSpec, options: Mapping[str, Any], field: str) -> None:
    """A ``pymc`` estimator needs PyMC (optional: ``pip install 'simstudy[pymc]'``)."""
    from simstudy.pymcmodel import installed

    python_fits(spec, options, field)
    if not installed():
        raise InputError(
            f"{field}.kind", "pymc", "an installed kind (pip install 'simstudy[pymc]')"
        )
