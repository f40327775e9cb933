"""Performance measures with Monte Carlo standard errors, from replication records."""

from simstudy.aggregate.measures import RECORD_COLUMNS, factor_columns, summarise

__all__ = ["RECORD_COLUMNS", "factor_columns", "summarise"]
