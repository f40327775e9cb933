"""A user's PyMC model run by simstudy's samplers: PyMC's log density as a NumPyro model.

The user writes ``build(data) -> pm.Model`` of a replication's data table, with every array
taken from the data wrapped in ``pm.Data``. Per replication the model is built (Python only)
and its ``pm.Data`` values read; once per data shape its log density and its variables
(free and ``pm.Deterministic``, on their constrained scale) are translated to one JAX function
of the unconstrained values *and the data* (PyTensor's JAX back end). The NumPyro model that
:mod:`simstudy.engine.chees` and :mod:`simstudy.engine.nuts` run is a flat unconstrained
vector with that log density as a factor, so one compiled program fits every replication of a
condition, batched as the built-in models are.

A number computed from the data outside ``pm.Data`` (an array passed as ``observed=`` or a
prior centred on a sample mean) would be frozen into the graph of the first replication and
silently reused; each replication's graph is therefore fingerprinted by its constants, and a
replication whose constants differ from its shape's first is refused (a failed replication
saying what to wrap in ``pm.Data``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simstudy.usercode import UserCodeError, call

#: The NumPyro site holding the flat vector of PyMC's unconstrained values.
VALUES_SITE = "_pymc_values"


def installed() -> bool:
    """Whether PyMC can be imported here (it is an optional dependency: ``simstudy[pymc]``)."""
    import importlib.util

    return importlib.util.find_spec("pymc") is not None


def _import() -> Any:
    """PyMC, imported so that it leaves JAX's settings as they were.

    PyTensor's JAX back end switches JAX to 64-bit numbers when PyTensor's ``floatX`` is
    float64 (its default): every estimator of the process would then run in float64, and a
    replication's numbers would depend on whether a PyMC model was loaded beside it. Models
    are built with ``floatX = float32`` instead, and JAX's setting is restored. Without
    ``PYTENSOR_FLAGS``, PyTensor compiles no C (the graph runs on JAX, not PyTensor's C
    back end, whose first compilation takes minutes on a fresh machine).
    """
    import jax

    if "pytensor" not in sys.modules:
        os.environ.setdefault("PYTENSOR_FLAGS", "cxx=")
    x64 = jax.config.jax_enable_x64
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTensor's advice on BLAS, at import
            import pymc
            import pytensor.link.jax.dispatch  # noqa: F401
    finally:
        jax.config.update("jax_enable_x64", x64)
    return pymc


@dataclass(frozen=True)
class Graph:
    """One data shape's translation of the user's model.

    Attributes
    ----------
    values
        PyMC's value variables (unconstrained) by name, with their shapes.
    data
        The ``pm.Data`` names, in the order :attr:`fn` takes them after the values.
    outputs
        The free variables and deterministics (constrained), in :attr:`fn`'s output order
        after the log density.
    fn
        ``(*values, *data) -> (logp, *outputs)``, traceable by JAX.
    fingerprint
        A hash of the numbers the graph holds (none may come from one replication's data).
    """

    values: tuple[tuple[str, tuple[int, ...]], ...]
    data: tuple[str, ...]
    outputs: tuple[str, ...]
    fn: Callable[..., Any]
    fingerprint: str


def _fingerprint(outputs: list[Any]) -> str:
    """A hash of the constants in the graph of ``outputs`` (their types, shapes and values)."""
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    digest = hashlib.sha1()
    for node in ancestors(outputs):
        if isinstance(node, Constant):
            value = np.asarray(node.data)
            digest.update(f"{value.dtype}{value.shape}".encode())
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _single(value: Any) -> np.ndarray:
    """A ``pm.Data`` value as simstudy's JAX takes it: floats as float32, integers as int32."""
    value = np.asarray(value)
    if value.dtype.kind == "f":
        return value.astype(np.float32)
    return value.astype(np.int32) if value.dtype.kind in "iub" else value


def translate(model: Any, jaxify: bool = True) -> tuple[str, dict[str, np.ndarray], Graph | None]:
    """``model``'s fingerprint, data values and (with ``jaxify``) graph.

    The fingerprint hashes the numbers the graph holds; the data values are the
    ``pm.Data`` arrays (in 32 bits); the graph's :attr:`Graph.fn` takes the value variables
    and those arrays.
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import get_mode
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs
    from pytensor.link.jax.dispatch import jax_funcify

    data_vars = list(model.data_vars)
    inputs = [d.type() for d in data_vars]
    with pytensor.config.change_flags(floatX="float32"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyMC's run-time checks (sigma > 0) are dropped in JAX
        outputs = [model.logp(), *model.replace_rvs_by_values(model.unobserved_RVs)]
        outputs = clone_replace(outputs, dict(zip(data_vars, inputs, strict=True)))
        # the other shared values (the lengths of dims) are fixed numbers of the graph
        fixed = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
        outputs = clone_replace(outputs, {v: pt.constant(v.get_value()) for v in fixed})
        data = {d.name: _single(d.get_value()) for d in data_vars}
        fingerprint = _fingerprint(outputs)
        if not jaxify:
            return fingerprint, data, None
        shapes = model.eval_rv_shapes()
        graph = FunctionGraph([*model.value_vars, *inputs], outputs, clone=True)
        get_mode("JAX").optimizer.rewrite(graph)
        fn = _float32(jax_funcify(graph))
    return (
        fingerprint,
        data,
        Graph(
            values=tuple((v.name, tuple(map(int, shapes[v.name]))) for v in model.value_vars),
            data=tuple(d.name for d in data_vars),
            outputs=tuple(v.name for v in model.unobserved_RVs),
            fn=fn,
            fingerprint=fingerprint,
        ),
    )


def _float32(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` quiet about the float64 it asks for and cannot have (JAX runs in float32).

    PyTensor sums float32 in a float64 accumulator; JAX without 64-bit numbers keeps
    float32 and warns on every trace.
    """

    def quiet(*args: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Explicitly requested dtype float64")
            return fn(*args)

    return quiet


def _shape_key(data: Mapping[str, Any]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((k, tuple(np.shape(v))) for k, v in data.items()))


class PymcModel:
    """The user's ``build(table) -> pm.Model`` as a NumPyro model of its ``pm.Data`` arrays.

    :meth:`data` builds the PyMC model of one replication's table and returns its data
    arrays (translating the model once per data shape); calling the instance with those
    arrays is the NumPyro model (traced after :meth:`data` saw data of that shape).
    """

    #: What the catalog and ``simstudy fit`` call it.
    label = "PyMC model"

    def __init__(self, dotted: str, build: Callable[..., Any]) -> None:
        self.dotted = dotted
        self.build = build
        self._graphs: dict[Any, Graph] = {}

    def __getstate__(self) -> dict[str, Any]:  # JAX functions do not pickle: translated anew
        return {**self.__dict__, "_graphs": {}}

    def _pymc_model(self, table: Any) -> Any:
        pymc = _import()
        import pytensor

        with pytensor.config.change_flags(floatX="float32"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = call(self.dotted, self.build, table)
        if not isinstance(model, pymc.Model):
            raise UserCodeError(f"{self.dotted} returned {type(model).__name__}, not a pm.Model")
        return model

    def data(self, table: Any) -> dict[str, np.ndarray]:
        """The ``pm.Data`` arrays of the model of ``table`` (translated once per shape).

        Raises
        ------
        UserCodeError
            When the user's function raises or returns no ``pm.Model``, or when the graph
            holds numbers other than those of earlier replications of the same shape (data
            outside ``pm.Data``).
        """
        model = self._pymc_model(table)
        fingerprint, data, _ = translate(model, jaxify=False)
        key = _shape_key(data)
        known = self._graphs.get(key)
        if known is None:
            *_, self._graphs[key] = translate(model)
        elif fingerprint != known.fingerprint:
            raise UserCodeError(
                f"{self.dotted}: the model holds numbers that differ from one data set to "
                "another outside pm.Data (an array passed as observed=, or a value computed "
                "from the data); wrap every array taken from the data in pm.Data(name, "
                "array), so that one compiled program fits every replication"
            )
        return data

    def graph(self, data: Mapping[str, Any]) -> Graph:
        """The translation for ``data``'s shapes (:meth:`data` has seen such data)."""
        try:
            return self._graphs[_shape_key(data)]
        except KeyError:
            raise RuntimeError(
                f"{self.dotted}: no PyMC model built for data of shapes {_shape_key(data)}"
            ) from None

    def __call__(self, **data: Any) -> None:
        """The NumPyro model: PyMC's log density of the flat unconstrained vector."""
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from jax.flatten_util import ravel_pytree

        graph = self.graph(data)
        template = [jnp.zeros(shape) for _, shape in graph.values]
        flat0, unravel = ravel_pytree(template)
        flat = numpyro.sample(
            VALUES_SITE,
            dist.ImproperUniform(dist.constraints.real_vector, (), flat0.shape),
        )
        logp, *outputs = graph.fn(*unravel(flat), *(data[name] for name in graph.data))
        numpyro.factor("_pymc_logp", logp)
        for name, value in zip(graph.outputs, outputs, strict=True):
            numpyro.deterministic(name, value)
