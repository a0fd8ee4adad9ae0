"""The op registry. Importing this package registers every op."""
from . import activation, combine, conv, dense, norm, pool  # noqa: F401  (registration)
from .base import ALIASES, REGISTRY, Op, RowArgs, lookup, op_names

__all__ = ["ALIASES", "REGISTRY", "Op", "RowArgs", "lookup", "op_names"]
