"""Batch normalisation (inference form: running statistics)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import ParamSpec
from .base import Attrs, Op, RowArgs, register


@dataclass(frozen=True)
class BatchNormAttrs(Attrs):
    eps: float  # added to the running variance


@register
class BatchNorm(Op):
    name, short, title = "bn", "bn", "BatchNorm"
    aliases = ("batchnorm", "batch norm")
    doc = "Batch normalisation: γ·(x − mean)/√(var + eps) + β per channel. Folded into the conv before it where the runtime can."
    options = {"eps": 1e-5}
    elementwise = True
    takes_activation = True  # a BN that cannot fold (after an add) still runs its activation in one pass
    attrs_type = BatchNormAttrs

    def configure(self, args: RowArgs) -> BatchNormAttrs:
        super().configure(args)
        self.check_options(args)
        return BatchNormAttrs(eps=float(self.option_number(args, "eps", low=0.0)))

    def param_shapes(self, attrs, ins):
        c = (ins[0].c,)
        return {"weight": ParamSpec(c, "bn_affine"), "bias": ParamSpec(c, "bn_affine"),
                "running_mean": ParamSpec(c, "bn_stats"), "running_var": ParamSpec(c, "bn_stats")}
