"""Pooling: average and max over a window, or over the whole map (global)."""
from __future__ import annotations

from ..errors import ArchError
from ..ir import TensorShape
from ..quant.rules import Int8Rule
from .base import Op, RowArgs, padding_for, register, stride_pair, window_out


class _Pool(Op):
    takes_stride = True
    filter_form = "KxK (e.g. 7x7), or the word global"
    options = {"pad": "valid"}
    flags = ("global",)
    always_global = False

    def configure(self, args: RowArgs) -> dict:
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
            return {"kernel": (x.h, x.w), "stride": (1, 1), "pads": (0, 0, 0, 0), "global": True}
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
        return {"kernel": (kh, kw), "stride": (sh, sw), "pads": pads, "global": False}

    def out_shape(self, attrs, ins):
        (kh, kw), (sh, sw), (t, l, b, r) = attrs["kernel"], attrs["stride"], attrs["pads"]
        x = ins[0]
        return TensorShape(window_out(x.h, kh, sh, t, b), window_out(x.w, kw, sw, l, r), x.c)


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
