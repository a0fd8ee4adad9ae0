"""The op kinds both graphs are written in, and the kind of each IR op."""
from __future__ import annotations

MAIN_KINDS = ("conv", "dwconv", "gconv", "dense")
PARAM_KINDS = MAIN_KINDS + ("bn",)
JOIN_KINDS = ("add", "mul", "concat")
COMMUTATIVE = ("add", "mul")
ACT_KINDS = ("relu", "relu6", "sigmoid", "hsigmoid", "hswish", "softmax")
POOL_KINDS = ("avgpool", "maxpool")
CONTRACTED = ("pass", "pad")

KIND_WORDS = {
    "conv": "conv", "dwconv": "depthwise conv", "gconv": "grouped conv", "dense": "fully connected",
    "bn": "batchnorm", "add": "add", "mul": "mul", "concat": "concat", "avgpool": "average pool",
    "maxpool": "max pool", "relu": "ReLU", "relu6": "ReLU6", "sigmoid": "sigmoid",
    "hsigmoid": "hard sigmoid", "hswish": "hard swish", "softmax": "softmax",
}

# The kind of each IR op. Every op of archdsl.ops must be here (tests/test_import_matcher.py checks it).
IR_KINDS = {
    "conv": "conv", "conv dw": "dwconv", "fc": "dense", "bn": "bn",
    "add": "add", "mul": "mul", "concat": "concat",
    "relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "hsigmoid": "hsigmoid", "hswish": "hswish",
    "softmax": "softmax",
    "avg pool": "avgpool", "global avg pool": "avgpool", "max pool": "maxpool", "global max pool": "maxpool",
    "flatten": "pass", "dropout": "pass",
}

BN_LOCALS = ("weight", "bias", "running_mean", "running_var")


def conv_kind(groups: int, in_channels: int | None) -> str:
    """conv, dwconv (one group per input channel) or gconv, the same rule on both sides."""
    if groups == 1:
        return "conv"
    return "dwconv" if in_channels is not None and groups == in_channels else "gconv"
