"""Discrete draws from pre-drawn noise: categories at their softmax, Dirichlet moments."""

import jax
import jax.numpy as jnp
import numpy as np

from simstudy.blocks.categorical import categorical_draw, dirichlet_draw


def test_categories_follow_the_softmax_of_their_logits():
    n = 200_000
    logits = jnp.log(jnp.asarray([0.5, 0.2, 0.3])) + 4.0  # a constant per row changes nothing
    drawn = categorical_draw(
        jnp.broadcast_to(logits, (n, 3)), jax.random.uniform(jax.random.key(0), (n,))
    )
    share = np.bincount(np.asarray(drawn), minlength=3) / n
    np.testing.assert_allclose(share, [0.5, 0.2, 0.3], atol=4 * np.sqrt(0.25 / n))


def test_a_category_without_mass_is_never_drawn():
    logits = jnp.asarray([[0.0, -jnp.inf, 0.0]] * 1000)
    drawn = categorical_draw(logits, jax.random.uniform(jax.random.key(1), (1000,)))
    assert not (np.asarray(drawn) == 1).any()


def test_dirichlet_draws_have_the_dirichlet_mean_and_variance():
    alpha = jnp.asarray([1.0, 3.0, 6.0])
    reps, tries = 20_000, 4
    keys = jax.random.split(jax.random.key(2), 4)
    noise = (
        jax.random.normal(keys[0], (reps, tries, 3)),
        jax.random.uniform(keys[1], (reps, tries, 3)),
        jax.random.uniform(keys[2], (reps, 3)),
    )
    draw = jax.vmap(lambda z, u, b: dirichlet_draw(keys[3], alpha, tries, (z, u, b)))
    p = np.asarray(draw(*noise))
    mean = np.asarray(alpha / alpha.sum())
    np.testing.assert_allclose(p.mean(0), mean, atol=0.005)
    np.testing.assert_allclose(p.var(0), mean * (1 - mean) / 11, rtol=0.05)
