"""Activations and softmax. Their maths lives in each backend's kernel for the op."""
from __future__ import annotations

from ..quant.rules import Int8Rule
from .base import Attrs, Op, RowArgs, register


class _Activation(Op):
    elementwise = True
    is_activation = True

    def configure(self, args: RowArgs) -> Attrs:
        super().configure(args)
        self.check_options(args)
        return Attrs()


@register
class ReLU(_Activation):
    name, short, title, aliases = "relu", "relu", "ReLU", ("re",)
    int8 = Int8Rule("clamp", output="input", doc="[max(-128, zp), 127] in the input's parameters")
    doc = formula = "max(x, 0)"
    import_names = {"tflite": ("RELU",), "onnx": ("Relu",), "keras": ("relu",)}


@register
class ReLU6(_Activation):
    name, short, title = "relu6", "relu6", "ReLU6"
    int8 = Int8Rule("clamp", output="input", doc="[max(-128, zp), min(127, zp + 6/s)]")
    doc = formula = "min(max(x, 0), 6)"
    import_names = {"tflite": ("RELU6",), "keras": ("relu6",)}  # ONNX: Clip(0, 6), checked by its reader


@register
class Sigmoid(_Activation):
    name, short, title = "sigmoid", "sigmoid", "Sigmoid"
    doc = "1 / (1 + exp(−x))"
    formula = "1 / (1 + exp(-x))"
    import_names = {"tflite": ("LOGISTIC",), "onnx": ("Sigmoid",), "keras": ("sigmoid",)}


@register
class HardSigmoid(_Activation):
    name, short, title, aliases = "hsigmoid", "hsigmoid", "Hard Sigmoid", ("hard sigmoid", "h-sigmoid")
    doc = "relu6(x + 3) / 6 (MobileNetV3)"
    formula = "relu6(x + 3) / 6"
    import_names = {}  # ONNX: HardSigmoid(alpha=1/6, beta=0.5), checked by its reader


@register
class HardSwish(_Activation):
    name, short, title, aliases = "hswish", "hswish", "Hard Swish", ("hs", "hard swish", "h-swish")
    doc = "x · relu6(x + 3) / 6 (MobileNetV3)"
    formula = "x * relu6(x + 3) / 6"
    import_names = {"tflite": ("HARD_SWISH",), "onnx": ("HardSwish",), "keras": ("hard_swish", "hard_silu")}


@register
class SiLU(_Activation):
    name, short, title, aliases = "silu", "silu", "SiLU", ("swish",)
    doc = "x · σ(x) (SiLU, swish: EfficientNet, MnasNet)"
    formula = "x / (1 + exp(-x))"
    import_names = {"keras": ("silu", "swish")}
    import_pattern = ("mul", "sigmoid")  # TFLite and ONNX (before opset 24) write x * sigmoid(x)


@register
class Softmax(Op):
    name, short, title = "softmax", "softmax", "Softmax"
    int8 = Int8Rule("softmax", output="fixed", doc="gemmlowp fixed-point exp; output 1/256, -128")
    doc = "Softmax over channels."
    import_names = {"tflite": ("SOFTMAX",), "onnx": ("Softmax",), "keras": ("softmax",)}
    takes_stride = True  # Table 1 prints 'Softmax / s1'

    def configure(self, args: RowArgs) -> Attrs:
        super().configure(args)
        self.check_options(args)
        return Attrs()
