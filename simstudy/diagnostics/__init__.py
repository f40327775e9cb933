"""Model checks on a fitted replication or data set, above the engine (they run its samplers).

- :mod:`~simstudy.diagnostics.latent_residuals`: residuals of the latent interaction model's
  structural regression, with and without the product term, from imputed latent scores
  (``simstudy diagnose``).
"""
