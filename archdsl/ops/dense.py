"""Fully connected layers and the shape-only ops around them."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchError
from ..ir import ParamSpec, TensorShape
from ..quant.rules import CLAMPS, Int8Rule
from .base import Attrs, Op, RowArgs, register


@dataclass(frozen=True)
class FCAttrs(Attrs):
    out_features: int
    bias: bool


@dataclass(frozen=True)
class DropoutAttrs(Attrs):
    p: float  # the drop probability, for training targets


@register
class FC(Op):
    name, short, title = "fc", "fc", "Fully Connected"
    int8 = Int8Rule("fc", weights=True, fused=CLAMPS, doc="per-tensor or per-channel int8 weights")
    aliases = ("dense", "linear")
    import_kind = "dense"
    doc = "Fully connected layer. Filter CinxCout; an HxWxC input is flattened in C, H, W order."
    takes_stride = True  # Table 1 prints 'FC / s1'
    filter_form = "CinxCout (e.g. 1024x1000)"
    options = {"bias": True}
    folds_bn = takes_activation = True
    attrs_type = FCAttrs

    def configure(self, args: RowArgs) -> FCAttrs:
        self.check_options(args)
        if args.stride not in (None, 1):
            raise ArchError("a fully connected layer has no stride", args.stride_loc)
        cin, cout = self.need_filter(args, (2,))
        args.check_declared(0, args.x.numel, "input features",
                            f"the input {args.x} flattens to {args.x.numel} features")
        return FCAttrs(out_features=cout, bias=self.option_bool(args, "bias"))

    def out_shape(self, attrs, ins):
        return TensorShape(1, 1, attrs.out_features)

    def param_shapes(self, attrs, ins):
        params = {"weight": ParamSpec((attrs.out_features, ins[0].numel), "weight")}
        if attrs.bias:
            params["bias"] = ParamSpec((attrs.out_features,), "bias")
        return params

    def macs(self, attrs, ins, out):
        return ins[0].numel * attrs.out_features


@register
class Flatten(Op):
    name, short, title = "flatten", "flatten", "Flatten"
    int8 = Int8Rule("reshape", output="input")
    doc = "Reshape HxWxC to 1x1x(C·H·W), in C, H, W order."
    import_kind = "pass"
    import_names = {"onnx": ("Flatten",)}
    alias_input = True

    def out_shape(self, attrs, ins):
        return TensorShape(1, 1, ins[0].numel)


@register
class Dropout(Op):
    name, short, title = "dropout", "dropout", "Dropout"
    int8 = Int8Rule("reshape", output="input")
    doc = "Dropout: identity at inference; p is kept for training targets."
    import_kind = "pass"
    import_names = {"onnx": ("Dropout",)}
    options = {"p": 0.5}
    alias_input = True
    elementwise = True
    attrs_type = DropoutAttrs

    def configure(self, args: RowArgs) -> DropoutAttrs:
        super().configure(args)
        self.check_options(args)
        p = self.option_number(args, "p", low=0.0)
        if p >= 1:
            raise ArchError(f"dropout p= must be below 1; got {p}", args.opt_loc("p"))
        return DropoutAttrs(p=float(p))
