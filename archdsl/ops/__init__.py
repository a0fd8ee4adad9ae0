"""The op registry. Importing this package registers every op.

Every registered op class is exported by its class name (`ops.Conv`, `ops.HardSwish`): backends
key their lowering tables by them. Each op's typed attributes (`Op.attrs_type`) are exported too.
"""
from . import activation, combine, conv, dense, norm, pool, shuffle  # noqa: F401  (registration)
from .base import ALIASES, REGISTRY, Attrs, Op, RowArgs, Window, activations, lookup, op_class, op_names
from .conv import ConvAttrs
from .dense import DropoutAttrs, FCAttrs
from .norm import BatchNormAttrs
from .pool import PoolAttrs
from .shuffle import ShuffleAttrs, SplitAttrs

for _op in REGISTRY.values():
    globals()[type(_op).__name__] = type(_op)

__all__ = ["ALIASES", "REGISTRY", "Attrs", "Op", "RowArgs", "Window", "activations", "lookup", "op_class", "op_names",
           "BatchNormAttrs", "ConvAttrs", "DropoutAttrs", "FCAttrs", "PoolAttrs", "ShuffleAttrs", "SplitAttrs",
           *(type(op).__name__ for op in REGISTRY.values())]
