"""Pure JAX conditional updates: the pieces every Gibbs sweep is built from.

A block takes typed arrays and pre-drawn noise and returns new values; it knows no model
family, no prior dictionary and nothing else of simstudy (this package imports only JAX).
"""
