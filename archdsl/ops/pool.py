"""Pooling: average and max over a window, or over the whole map (global)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchError
from ..quant.rules import Int8Rule
from .base import Op, RowArgs, Window, padding_for, register, stride_pair, window_out


@dataclass(frozen=True)
class PoolAttrs(Window):
    """A pool's window; `is_global`: one window over the whole map, whatever its size (the kernel
    is the map's size at this spec's parameters)."""

    is_global: bool

    @property
    def slides(self) -> bool:
        return not self.is_global


class _Pool(Op):
    takes_stride = True
    filter_form = "KxK (e.g. 7x7), or the word global"
    options = {"pad": "valid"}
    flags = ("global",)
    always_global = False
    attrs_type = PoolAttrs

    def configure(self, args: RowArgs) -> PoolAttrs:
        self.check_options(args)
        x = args.x
        is_global = self.always_global or "global" in {f.lower() for f in args.flags}
        if is_global:
            if args.stride not in (None, 1):
                raise ArchError("a global pool has no stride: its one window covers the whole map",
                                args.stride_loc, "drop the / sN, or drop `global` to slide a window")
            if args.filter is not None:  # the printed window is an assertion about the map size
                kh, kw = self.need_filter(args, (2,))
                if args.at_defaults and (kh, kw) != (x.h, x.w):
                    raise ArchError(f"global pool window printed as {kh}x{kw}, but the map is {x.h}x{x.w}",
                                    args.filter_loc)
            return PoolAttrs(kernel=(x.h, x.w), stride=(1, 1), pads=(0, 0, 0, 0), is_global=True)
        kh, kw = self.need_filter(args, (2,))
        sh, sw = stride_pair(args, (kh, kw))  # the stride defaults to the window, axis by axis
        pads = padding_for(args.opt("pad", "valid"), (kh, kw), (sh, sw), (x.h, x.w), args.opt_loc("pad"))
        if max(pads[0], pads[2]) >= kh or max(pads[1], pads[3]) >= kw:
            # a window that could lie wholly in the padding has nothing to pool (ONNX Runtime refuses it)
            raise ArchError(f"padding {max(pads)} is not smaller than the {kh}x{kw} pool window",
                            args.opt_loc("pad"), "use pad=same or a padding below the window size")
        out_h = window_out(x.h, kh, sh, pads[0], pads[2])
        out_w = window_out(x.w, kw, sw, pads[1], pads[3])
        if out_h < 1 or out_w < 1:
            raise ArchError(f"a {kh}x{kw} pool does not fit the {x.h}x{x.w} input", args.filter_loc,
                            "write `global` to pool over the whole map whatever its size")
        return PoolAttrs(kernel=(kh, kw), stride=(sh, sw), pads=pads, is_global=False)

    def out_shape(self, attrs, ins):
        return attrs.output(ins[0], ins[0].c)


@register
class AvgPool(_Pool):
    name, short, title = "avg pool", "pool", "Avg Pool"
    int8 = Int8Rule("avgpool", output="input", doc="raw window sum, rounded division")  # global too
    aliases = ("avgpool", "average pool")
    import_kind = "avgpool"
    doc = "Average pooling (padding is not counted in the average)."


@register
class MaxPool(_Pool):
    name, short, title = "max pool", "pool", "Max Pool"
    int8 = Int8Rule("maxpool", output="input")  # global too
    aliases = ("maxpool",)
    import_kind = "maxpool"
    doc = "Max pooling."


@register
class GlobalAvgPool(AvgPool):
    name, short = "global avg pool", "pool"
    aliases = ("global average pool", "gap")
    doc = "Average over the whole map, whatever its size."
    always_global = True
    flags = ()


@register
class GlobalMaxPool(MaxPool):
    name, short = "global max pool", "pool"
    aliases = ()
    doc = "Max over the whole map, whatever its size."
    always_global = True
    flags = ()
