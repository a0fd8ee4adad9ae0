"""The op registry. Importing this package registers every op.

The op classes are exported by name: backends key their lowering tables by them (`ops.Conv`).
"""
from . import activation, combine, conv, dense, norm, pool  # noqa: F401  (registration)
from .activation import HardSigmoid, HardSwish, ReLU, ReLU6, Sigmoid, Softmax
from .base import ALIASES, REGISTRY, Op, RowArgs, activations, lookup, op_class, op_names
from .combine import Add, Concat, Mul
from .conv import Conv, ConvDW
from .dense import FC, Dropout, Flatten
from .norm import BatchNorm
from .pool import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool

__all__ = ["ALIASES", "REGISTRY", "Op", "RowArgs", "activations", "lookup", "op_class", "op_names",
           "HardSigmoid", "HardSwish", "ReLU", "ReLU6", "Sigmoid", "Softmax", "Add", "Concat", "Mul", "Conv",
           "ConvDW", "FC", "Dropout", "Flatten", "BatchNorm", "AvgPool", "GlobalAvgPool", "GlobalMaxPool", "MaxPool"]
