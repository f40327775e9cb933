"""simstudy: Monte Carlo simulation studies of Bayesian latent-variable estimators."""

__version__ = "0.1.0"
