"""ShuffleNet's channel ops: a split of the channels into equal parts, and the channel shuffle."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArchError
from ..ir import TensorShape
from .base import Attrs, Op, RowArgs, register


@dataclass(frozen=True)
class SplitAttrs(Attrs):
    """Part `take` (counted from 1) of `parts` equal groups of the channels."""

    parts: int
    take: int

    def channel_range(self, channels: int) -> tuple[int, int]:
        """[first, end) channels of the input the split keeps."""
        part = channels // self.parts
        return (self.take - 1) * part, self.take * part


@dataclass(frozen=True)
class ShuffleAttrs(Attrs):
    groups: int


@register
class ChannelSplit(Op):
    name, short, title = "channel split", "split", "Channel Split"
    aliases = ("split",)
    doc = ("Part `take` of `parts` equal groups of the channels (ShuffleNetV2's split: "
           "take=1 in one branch, take=2 in the other).")
    options = {"parts": 2, "take": 1}
    import_kind = "split"
    attrs_type = SplitAttrs

    def configure(self, args: RowArgs) -> SplitAttrs:
        super().configure(args)
        self.check_options(args)
        parts = self.option_number(args, "parts", integer=True, low=2)
        take = self.option_number(args, "take", integer=True, low=1)
        if take > parts:
            raise ArchError(f"take={take}, but the channels are split in {parts} parts", args.opt_loc("take"),
                            f"take= counts the parts from 1 to {parts}")
        if args.x.c % parts:
            raise ArchError(f"{args.x.c} channels do not split into {parts} equal parts", args.op_loc)
        return SplitAttrs(parts=parts, take=take)

    def out_shape(self, attrs, ins):
        x = ins[0]
        return TensorShape(x.h, x.w, x.c // attrs.parts)


@register
class ChannelShuffle(Op):
    name, short, title = "channel shuffle", "shuffle", "Channel Shuffle"
    aliases = ("shuffle",)
    doc = ("Channel shuffle with `groups` groups (ShuffleNet): the channels as groups x C/groups, "
           "transposed, so output channel j·groups + i is input channel i·C/groups + j.")
    options = {"groups": 2}
    import_kind = "shuffle"
    attrs_type = ShuffleAttrs

    def configure(self, args: RowArgs) -> ShuffleAttrs:
        super().configure(args)
        self.check_options(args)
        groups = self.option_number(args, "groups", integer=True, low=1)
        if args.x.c % groups:
            raise ArchError(f"groups={groups} must divide the {args.x.c} channels", args.opt_loc("groups"))
        return ShuffleAttrs(groups=groups)
