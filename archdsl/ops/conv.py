"""Convolutions: standard (`conv`) and depthwise (`conv dw`)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchError
from ..ir import ParamSpec
from ..quant.rules import CLAMPS, Int8Rule
from .base import Op, RowArgs, Window, padding_for, register, stride_pair, window_out


@dataclass(frozen=True)
class ConvAttrs(Window):
    """A convolution's window and its output: `groups` of the input channels each make
    out_channels / groups outputs (depthwise: groups = input channels); `bias` adds one per output."""

    out_channels: int
    groups: int
    bias: bool


def _kernel_stride_pads(op: Op, args: RowArgs, kh: int, kw: int) -> tuple:
    sh, sw = stride_pair(args, (1, 1))
    pads = padding_for(args.opt("pad", op.options["pad"]), (kh, kw), (sh, sw),
                       (args.x.h, args.x.w), args.opt_loc("pad"))
    out_h = window_out(args.x.h, kh, sh, pads[0], pads[2])
    out_w = window_out(args.x.w, kw, sw, pads[1], pads[3])
    if out_h < 1 or out_w < 1:
        raise ArchError(f"a {kh}x{kw} filter does not fit the {args.x.h}x{args.x.w} input", args.filter_loc,
                        "use pad=same, a smaller filter or a larger input")
    return (kh, kw), (sh, sw), pads


@register
class Conv(Op):
    name, short, title = "conv", "conv", "Conv"
    int8 = Int8Rule("conv", weights=True, fused=CLAMPS,
                    doc="per-channel int8 weights, int32 bias, input padded with its zero point")
    doc = "Standard convolution. Filter KxKxCinxCout; α scales Cout."
    takes_stride = True
    filter_form = "KxKxCinxCout (e.g. 3x3x32x64)"
    options = {"pad": "same", "bias": False, "groups": 1, "width": "scaled"}
    folds_bn = takes_activation = True
    attrs_type = ConvAttrs

    def configure(self, args: RowArgs) -> ConvAttrs:
        self.check_options(args)
        if args.dw:
            raise ArchError("'conv' with a 'dw' filter", args.op_loc, "a depthwise row is written 'conv dw'")
        kh, kw, cin, cout = self.need_filter(args, (4,))
        groups = self.option_number(args, "groups", integer=True, low=1)
        args.check_declared(2, args.x.c, "input channels",
                            "the filter's third number is the input channel count")
        width = self.option_choice(args, "width", ("scaled", "fixed"))
        if width == "scaled" and not args.filter_from_input[3]:
            cout = args.scale_width(cout)
        if args.x.c % groups or cout % groups:
            raise ArchError(f"groups={groups} must divide the input ({args.x.c}) and output ({cout}) channels",
                            args.opt_loc("groups"))
        kernel, stride, pads = _kernel_stride_pads(self, args, kh, kw)
        return ConvAttrs(kernel=kernel, stride=stride, pads=pads, out_channels=cout, groups=groups,
                         bias=self.option_bool(args, "bias"))

    def out_shape(self, attrs, ins):
        return attrs.output(ins[0], attrs.out_channels)

    def param_shapes(self, attrs, ins):
        kh, kw = attrs.kernel
        cout = attrs.out_channels
        params = {"weight": ParamSpec((cout, ins[0].c // attrs.groups, kh, kw), "weight")}
        if attrs.bias:
            params["bias"] = ParamSpec((cout,), "bias")
        return params

    def macs(self, attrs, ins, out):
        kh, kw = attrs.kernel
        return kh * kw * (ins[0].c // attrs.groups) * out.c * out.h * out.w

    def cost_type(self, attrs):
        kh, kw = attrs.kernel
        return f"Conv {kh}x{kw}" if attrs.groups == 1 else f"Conv {kh}x{kw} (grouped)"


@register
class ConvDW(Op):
    name, short, title = "conv dw", "dw", "Conv DW"
    int8 = Int8Rule("conv", weights=True, fused=CLAMPS, doc="as conv, one group per channel")
    aliases = ("dwconv", "depthwise")
    import_kind = "dwconv"
    doc = "Depthwise convolution: one KxK filter per channel. Filter KxKxC dw."
    takes_stride = True
    filter_form = "KxKxC dw (e.g. 3x3x64 dw)"
    options = {"pad": "same", "bias": False, "multiplier": 1}
    folds_bn = takes_activation = True
    attrs_type = ConvAttrs

    def configure(self, args: RowArgs) -> ConvAttrs:
        self.check_options(args)
        kh, kw, c = self.need_filter(args, (3,))
        args.check_declared(2, args.x.c, "channels", "a depthwise filter KxKxC has one filter per input channel")
        mult = self.option_number(args, "multiplier", integer=True, low=1)
        kernel, stride, pads = _kernel_stride_pads(self, args, kh, kw)
        return ConvAttrs(kernel=kernel, stride=stride, pads=pads, out_channels=args.x.c * mult, groups=args.x.c,
                         bias=self.option_bool(args, "bias"))

    out_shape = Conv.out_shape
    param_shapes = Conv.param_shapes
    macs = Conv.macs

    def cost_type(self, attrs):
        kh, kw = attrs.kernel
        return f"Conv DW {kh}x{kw}"
