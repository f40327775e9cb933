"""The model spec: declarations, the lavaan-superset syntax and its intermediate representation.

Importing this package loads no JAX: config validation reads a model's declaration (its
factors, parameters and priors) from here. The compiler's back ends (simulator, Gibbs sweep,
NumPyro model) live in :mod:`simstudy.spec.compile` and the modules it imports.
"""

from simstudy.spec.declare import (
    MISSINGNESS_FACTORS,
    FactorSpec,
    ModelInfo,
    with_defaults,
)

__all__ = ["MISSINGNESS_FACTORS", "FactorSpec", "ModelInfo", "with_defaults"]
