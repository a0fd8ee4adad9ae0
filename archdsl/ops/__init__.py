"""The op registry. Importing this package registers every op.

Every registered op class is exported by its class name (`ops.Conv`, `ops.HardSwish`): backends
key their lowering tables by them.
"""
from . import activation, combine, conv, dense, norm, pool, shuffle  # noqa: F401  (registration)
from .base import ALIASES, REGISTRY, Op, RowArgs, activations, lookup, op_class, op_names

for _op in REGISTRY.values():
    globals()[type(_op).__name__] = type(_op)

__all__ = ["ALIASES", "REGISTRY", "Op", "RowArgs", "activations", "lookup", "op_class", "op_names",
           *(type(op).__name__ for op in REGISTRY.values())]
