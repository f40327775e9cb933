"""Rank-normalized ESS and R-hat (Vehtari et al. 2021) for many fits at once, in NumPy.

ArviZ computes these one variable at a time, with a Python loop over autocorrelation lags; for
a study that is much of the time after sampling (110 ms per latent interaction fit of 24
estimands on this 2-core machine against 40 ms here, ``benchmarks/results/summary_speed.md``). Here
every function works on arrays of shape ``(..., chains, draws)`` -- any number of fits and
estimands in the leading axes -- with the same definitions as ArviZ 0.23 (``az.ess(method=
"bulk" | "tail")``, ``az.rhat(method="rank")``): split chains, ranks with ties averaged, Blom's
normal scores, FFT autocovariances and Geyer's initial positive and monotone sequences. The
tests check agreement with ArviZ to rounding.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, special

#: Tail ESS: the smaller of the ESS of the indicators of these two quantiles (ArviZ's default).
TAIL_PROBS = (0.05, 0.95)


def split_chains(x: np.ndarray) -> np.ndarray:
    """``(..., C, S)`` -> ``(..., 2C, S // 2)``: each chain's first and last halves as chains."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., x.shape[-1] - half :]], axis=-2)


def z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks over all chains and draws (ties get their average rank)."""
    shape = x.shape
    flat = x.reshape(*shape[:-2], -1)
    n = flat.shape[-1]
    order = np.argsort(flat, axis=-1)  # ties get their average rank: order among them is moot
    ordered = np.take_along_axis(flat, order, axis=-1)
    index = np.broadcast_to(np.arange(n), flat.shape)
    new_run = np.ones(flat.shape, dtype=bool)
    new_run[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    last_of_run = np.ones(flat.shape, dtype=bool)
    last_of_run[..., :-1] = new_run[..., 1:]
    first = np.maximum.accumulate(np.where(new_run, index, 0), axis=-1)
    last = np.flip(
        np.minimum.accumulate(np.flip(np.where(last_of_run, index, n - 1), -1), axis=-1), -1
    )
    ranks = np.empty(flat.shape)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=-1)
    return special.ndtri((ranks - 3 / 8) / (n + 1 / 4)).reshape(shape)


def autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariances of each chain at every lag (FFT), ``(..., C, S)``."""
    n = x.shape[-1]
    m = fft.next_fast_len(2 * n, real=True)
    centred = x - x.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=-1)
    return np.fft.irfft(spectrum * np.conjugate(spectrum), n=m, axis=-1)[..., :n] / n


def ess(x: np.ndarray) -> np.ndarray:
    """ESS of draws ``(..., C, S)`` as ArviZ's ``_ess`` (Geyer's initial monotone sequence).

    Returns an array of the leading shape. Constant draws have ESS ``C * S`` (as ArviZ).
    """
    x = np.asarray(x, dtype=float)
    n_chain, n_draw = x.shape[-2:]
    acov = autocov(x)
    mean_var = acov[..., 0].mean(axis=-1) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus = var_plus + x.mean(axis=-1).var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[..., None] - acov.mean(axis=-2)) / var_plus[..., None]
    rho[..., 0] = 1.0
    # pairs (rho[2k], rho[2k+1]); ArviZ computes pairs k = 1, 2, ... while its lag counter
    # t = 2k - 1 < n_draw - 3, and stops after the first pair whose sum is <= 0
    k_max = max((n_draw - 3) // 2, 0)
    pairs = rho[..., 0 : 2 * k_max + 2 : 2] + rho[..., 1 : 2 * k_max + 2 : 2]
    nonpositive = pairs[..., 1:] <= 0
    # K: the last pair computed (the first non-positive one, or the last allowed)
    if k_max:
        last = np.where(nonpositive.any(axis=-1), nonpositive.argmax(axis=-1) + 1, k_max)
    else:  # too few draws for ArviZ's loop to run
        last = np.zeros(pairs.shape[:-1], dtype=int)
    used = np.arange(pairs.shape[-1]) < last[..., None]  # pairs 0 .. K-1 enter the sum
    monotone = np.minimum.accumulate(np.where(used, pairs, np.inf), axis=-1)
    total = np.where(used, monotone, 0.0).sum(axis=-1)
    even = np.take_along_axis(rho, (2 * last)[..., None], axis=-1)[..., 0]
    pair_last = np.take_along_axis(pairs, last[..., None], axis=-1)[..., 0]
    # rho[2K] counts when positive ("improve estimation"), or when pair K was kept (sum >= 0)
    tail = np.where((even > 0) | (pair_last >= 0), even, 0.0)
    tau = np.maximum(-1.0 + 2.0 * total + tail, 1 / np.log10(n_chain * n_draw))
    out = n_chain * n_draw / tau
    constant = (x.max(axis=(-2, -1)) - x.min(axis=(-2, -1))) < np.finfo(float).resolution
    out = np.where(constant, float(n_chain * n_draw), out)
    return np.where(np.isnan(rho).any(axis=-1) & ~constant, np.nan, out)


#: Fewer draws per chain than this: ESS and R-hat are NaN (as ArviZ).
MIN_DRAWS = 4


def _too_short(x: np.ndarray) -> np.ndarray | None:
    return np.full(x.shape[:-2], np.nan) if x.shape[-1] < MIN_DRAWS else None


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS: ESS of the normal scores of the split chains' ranks."""
    x = np.asarray(x, dtype=float)
    short = _too_short(x)
    return short if short is not None else ess(z_scale(split_chains(x)))


def ess_tail(x: np.ndarray) -> np.ndarray:
    """Tail ESS: the smaller ESS of the indicators ``x <= q05`` and ``x <= q95``."""
    x = np.asarray(x, dtype=float)
    if (short := _too_short(x)) is not None:
        return short
    flat = x.reshape(*x.shape[:-2], -1)
    out = []
    for prob in TAIL_PROBS:
        q = np.quantile(flat, prob, axis=-1)
        out.append(ess(split_chains((x <= q[..., None, None]).astype(float))))
    return np.minimum(*out)


def _folded(split: np.ndarray) -> np.ndarray:
    flat = split.reshape(*split.shape[:-2], -1)
    return np.abs(split - np.median(flat, axis=-1)[..., None, None])


def _rhat(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    between = n * x.mean(axis=-1).var(axis=-1, ddof=1)
    within = x.var(axis=-1, ddof=1).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def rhat(x: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat: the larger of the bulk and the folded (tail) R-hat.

    NaN with a single chain (as ArviZ).
    """
    x = np.asarray(x, dtype=float)
    if x.shape[-2] < 2 or x.shape[-1] < MIN_DRAWS:
        return np.full(x.shape[:-2], np.nan)
    split = split_chains(x)
    return np.maximum(_rhat(z_scale(split)), _rhat(z_scale(_folded(split))))


def diagnose(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bulk ESS, tail ESS and R-hat of draws ``(..., C, S)`` (the normal scores computed once).

    The same numbers as :func:`ess_bulk`, :func:`ess_tail` and :func:`rhat`.
    """
    x = np.asarray(x, dtype=float)
    if x.shape[-1] < MIN_DRAWS:
        nan = np.full(x.shape[:-2], np.nan)
        return nan, nan, nan.copy()
    split = split_chains(x)
    z = z_scale(split)
    bulk = ess(z)
    if x.shape[-2] < 2:
        r_hat = np.full(x.shape[:-2], np.nan)
    else:
        r_hat = np.maximum(_rhat(z), _rhat(z_scale(_folded(split))))
    return bulk, ess_tail(x), r_hat
