"""The op kinds both graphs are written in, and the kind of each IR op."""
from __future__ import annotations

from ...ops import REGISTRY, activations

MAIN_KINDS = ("conv", "dwconv", "gconv", "dense")
PARAM_KINDS = MAIN_KINDS + ("bn",)
JOIN_KINDS = ("add", "mul", "concat")
COMMUTATIVE = ("add", "mul")
POOL_KINDS = ("avgpool", "maxpool")
CONTRACTED = ("pass", "pad")

# The kind of each IR op, from the registry (Op.import_kind).
IR_KINDS = {name: op.import_kind for name, op in REGISTRY.items()}

# The kinds that follow a layer in one unit of the alignment: the activations and softmax.
ACT_KINDS = tuple(dict.fromkeys([op.import_kind for op in activations()] + [REGISTRY["softmax"].import_kind]))

# How messages name a kind: the structural kinds here, every other kind by its op's title.
KIND_WORDS = {
    "conv": "conv", "dwconv": "depthwise conv", "gconv": "grouped conv", "dense": "fully connected",
    "bn": "batchnorm", "add": "add", "mul": "mul", "concat": "concat", "avgpool": "average pool",
    "maxpool": "max pool",
}
for _op in REGISTRY.values():
    if _op.import_kind not in CONTRACTED:
        KIND_WORDS.setdefault(_op.import_kind, _op.title or _op.name)


def format_names(fmt: str) -> dict[str, str]:
    """{name of an op of model format `fmt` ("tflite", "onnx", "keras"): its kind}, for the ops that
    read one to one (Op.import_names); a reader adds its handlers for the rest."""
    return {name: op.import_kind for op in REGISTRY.values() for name in op.import_names.get(fmt, ())}

BN_LOCALS = ("weight", "bias", "running_mean", "running_var")


def conv_kind(groups: int, in_channels: int | None) -> str:
    """conv, dwconv (one group per input channel) or gconv, the same rule on both sides."""
    if groups == 1:
        return "conv"
    return "dwconv" if in_channels is not None and groups == in_channels else "gconv"
