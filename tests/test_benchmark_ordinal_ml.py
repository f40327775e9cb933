"""The ML-probit reference of benchmarks/compare_lavaan_ordinal.py (benchmarks/ordinal_ml.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ordinal_ml


def test_importing_it_leaves_the_process_in_single_precision():
    # the tests share a process with simstudy's float32 programs; ml_probit sets x64 per fit
    assert not jax.config.jax_enable_x64


def test_quadrature_gives_a_single_items_closed_form_marginal():
    # one item, its factor integrated out: P(y = k) = Phi(tau_k / sqrt(1 + psi)) - Phi(...)
    lay = ordinal_ml.layout_of({"f": ["y"]}, 4)
    tau, psi = np.array([[-0.8, 0.1, 1.3]]), np.array([[2.0]])
    codes = np.array([[0], [1], [1], [2], [3], [3], [3]])
    with ordinal_ml.X64(True):
        u = ordinal_ml._pack(np.ones(1), tau, psi, lay)
        got = float(ordinal_ml.log_likelihood(codes, lay, nodes=40)(u))
    cdf = norm.cdf(np.concatenate([[-np.inf], tau[0], [np.inf]]) / np.sqrt(1 + psi[0, 0]))
    assert got == pytest.approx(np.log(np.diff(cdf)[codes[:, 0]]).sum(), rel=1e-8)


def test_pack_and_unpack_are_inverse_and_names_follow_lavaan():
    lay = ordinal_ml.layout_of({"a": ["y1", "y2"], "b": ["y3", "y4"]}, 3)
    values = {
        "a=~y2": 0.7, "b=~y4": 1.4, "a~~a": 1.5, "b~~b": 0.6, "a~~b": 0.3,
        **{f"y{i}|t{k}": (-0.5 if k == 1 else 0.4) + 0.1 * i for i in range(1, 5) for k in (1, 2)},
    }  # fmt: skip
    with ordinal_ml.X64(True):
        u = ordinal_ml.start_of(values, lay)
        natural = ordinal_ml._natural(u, lay)
    natural = dict(zip(ordinal_ml.names(lay), np.asarray(natural), strict=True))
    assert natural == pytest.approx(values)


@pytest.mark.slow  # ~40 s: the quadrature's Newton steps and BFGS compile; the default tier
def test_ml_recovers_a_two_factor_population():  # checks the likelihood by the closed form
    rng = np.random.default_rng(3)
    lay = ordinal_ml.layout_of({"a": ["y1", "y2", "y3"], "b": ["y4", "y5", "y6"]}, 4)
    lam = np.array([1.0, 0.8, 1.5, 1.0, 1.2, 0.6])
    psi = np.array([[1.2, 0.4], [0.4, 0.8]])
    tau = np.tile([-0.9, 0.0, 1.0], (6, 1))
    n = 500
    eta = rng.multivariate_normal(np.zeros(2), psi, n)
    ystar = eta[:, lay.factor_of] * lam + rng.standard_normal((n, 6))
    codes = np.stack([np.searchsorted(tau[j], ystar[:, j]) for j in range(6)], axis=1)
    with ordinal_ml.X64(True):
        natural = ordinal_ml._natural(ordinal_ml._pack(lam, tau, psi, lay), lay)
    truth = dict(zip(ordinal_ml.names(lay), np.asarray(natural), strict=True))
    start = {k: v * 0.8 for k, v in truth.items()}  # away from the truth
    est, se, facts = ordinal_ml.ml_probit(codes, lay, start, nodes=5)
    assert facts["converged"]
    z = np.array([(est[k] - truth[k]) / se[k] for k in truth])
    assert np.abs(z).max() < 4.0, z
    assert all(0 < se[k] < 1.0 for k in truth)  # finite, of the order N = 500 gives
