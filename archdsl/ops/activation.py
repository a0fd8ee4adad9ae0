"""Activations and softmax. Their maths lives in each backend's kernel for the op."""
from __future__ import annotations

from .base import Op, RowArgs, register


class _Activation(Op):
    elementwise = True
    is_activation = True

    def configure(self, args: RowArgs) -> dict:
        super().configure(args)
        self.check_options(args)
        return {}


@register
class ReLU(_Activation):
    name, short, title, aliases = "relu", "relu", "ReLU", ("re",)
    doc = "max(x, 0)"


@register
class ReLU6(_Activation):
    name, short, title = "relu6", "relu6", "ReLU6"
    doc = "min(max(x, 0), 6)"


@register
class Sigmoid(_Activation):
    name, short, title = "sigmoid", "sigmoid", "Sigmoid"
    doc = "1 / (1 + exp(−x))"


@register
class HardSigmoid(_Activation):
    name, short, title, aliases = "hsigmoid", "hsigmoid", "Hard Sigmoid", ("hard sigmoid", "h-sigmoid")
    doc = "relu6(x + 3) / 6 (MobileNetV3)"


@register
class HardSwish(_Activation):
    name, short, title, aliases = "hswish", "hswish", "Hard Swish", ("hs", "hard swish", "h-swish")
    doc = "x · relu6(x + 3) / 6 (MobileNetV3)"


@register
class Softmax(Op):
    name, short, title = "softmax", "softmax", "Softmax"
    doc = "Softmax over channels."
    takes_stride = True  # Table 1 prints 'Softmax / s1'

    def configure(self, args: RowArgs) -> dict:
        super().configure(args)
        self.check_options(args)
        return {}
