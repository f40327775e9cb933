"""The vectorized ESS and R-hat agree with ArviZ's, fit by fit and estimand by estimand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from simstudy.engine import diagnostics
from simstudy.engine.summary import summarise_draws

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


def _ar1(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """AR(1) chains with a different coefficient per series (from -0.5 to 0.99)."""
    phi = rng.uniform(-0.5, 0.99, shape[:-1])
    noise = rng.standard_normal(shape)
    x = np.empty(shape)
    x[..., 0] = noise[..., 0]
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + noise[..., t]
    return x


def _arviz(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ArviZ's bulk ESS, tail ESS and rank R-hat of each series of ``x`` (E, C, S)."""
    dataset = az.convert_to_dataset({f"v{i}": x[i] for i in range(x.shape[0])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bulk = az.ess(dataset, method="bulk")
        tail = az.ess(dataset, method="tail")
        rhat = az.rhat(dataset) if x.shape[1] > 1 else None
    pick = lambda d: np.array([float(d[f"v{i}"]) for i in range(x.shape[0])])  # noqa: E731
    return pick(bulk), pick(tail), pick(rhat) if rhat is not None else np.full(x.shape[0], np.nan)


@pytest.mark.parametrize(
    ("chains", "draws"), [(2, 4000), (4, 1001), (1, 500), (3, 10), (2, 7), (2, 6), (2, 4), (2, 3)]
)
def test_diagnose_matches_arviz(chains, draws):
    rng = np.random.default_rng(chains * 1000 + draws)
    x = _ar1(rng, (6, chains, draws)).astype(np.float32).astype(float)  # float32 draws: ties
    x[1] = np.round(x[1], 1)  # many ties
    x[2] = np.repeat(x[2, :, : draws // 3 + 1], 3, axis=-1)[:, :draws]  # a sticky chain
    x[3, 0] += 3.0  # one chain stuck elsewhere
    x[4] = 0.25  # a constant estimand
    ours = diagnostics.diagnose(x)
    bulk, tail, rhat = _arviz(x)
    # a split chain of identical values has within-chain variance 0: R-hat is infinite here,
    # and ArviZ's mean of the equal values rounds, leaving a variance of ~1e-17 (R-hat ~1e8)
    reference = (bulk, tail, np.where(rhat > 1e6, np.inf, rhat))
    for got, want in zip(ours, reference, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # the separate functions give the same numbers as diagnose
    np.testing.assert_allclose(diagnostics.ess_bulk(x), ours[0], rtol=0, atol=0, equal_nan=True)
    np.testing.assert_allclose(diagnostics.ess_tail(x), ours[1], rtol=0, atol=0, equal_nan=True)
    np.testing.assert_allclose(diagnostics.rhat(x), ours[2], rtol=0, atol=0, equal_nan=True)


def test_diagnose_works_on_any_leading_shape():
    rng = np.random.default_rng(5)
    x = _ar1(rng, (3, 4, 2, 300))
    batched = diagnostics.diagnose(x)
    for i in range(3):
        one = diagnostics.diagnose(x[i])
        for b, o in zip(batched, one, strict=True):
            np.testing.assert_allclose(b[i], o, rtol=1e-12)


def test_summarise_draws_reports_arviz_diagnostics():
    rng = np.random.default_rng(9)
    x = _ar1(rng, (3, 2, 800))
    summary = summarise_draws({f"v{i}": x[i] for i in range(3)}, 0.9)
    bulk, tail, rhat = _arviz(x)
    for i in range(3):
        s = summary[f"v{i}"]
        assert s.ess_bulk == pytest.approx(bulk[i], rel=1e-9)
        assert s.ess_tail == pytest.approx(tail[i], rel=1e-9)
        assert s.rhat == pytest.approx(rhat[i], abs=1e-12)
