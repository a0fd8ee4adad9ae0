"""How the matcher words a difference: a weight shape as a spec's filter column, a layer with the
batchnorm and activations that follow it, the spec row a node came from."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import Loc
from ...ir import Node
from .kinds import ACT_KINDS, KIND_WORDS, MAIN_KINDS
from .layouts import ir_shape_of
from .model import ModelOp
from .order import _G

@dataclass
class _Item:
    kind: str
    sig: tuple
    node: _G


def _ir_sig(node: Node, kind: str) -> tuple:
    if kind in MAIN_KINDS:
        return (kind, tuple(node.params["weight"].shape))
    if kind == "bn":
        return (kind, tuple(node.params["weight"].shape))
    return (kind,)


def _model_sig(op: ModelOp, kind: str | None = None) -> tuple:
    """`kind` is the op's kind in the canonical order, where a pattern may have replaced it."""
    kind = kind or op.kind
    if kind in MAIN_KINDS:
        return (kind, ir_shape_of(op.params["weight"]) if "weight" in op.params else None)
    if kind == "bn":
        t = next(iter(op.params.values()), None)
        return (kind, ir_shape_of(t) if t is not None else None)
    return (kind,)


def _loc(node: Node) -> Loc | None:
    row = node.row
    if row is None or not row.line:
        return None
    text = (row.text or "").split("#")[0].strip()
    return Loc(row.line, max(1, row.col), max(1, len(text)))


def _line(node: Node) -> int:
    return node.row.line if node.row is not None else 0


def filter_words(kind: str, shape: tuple[int, ...] | None) -> str:
    """A weight shape in the IR layout, written as a spec's filter column."""
    if shape is None:
        return KIND_WORDS.get(kind, kind)
    if kind in ("conv", "gconv") and len(shape) == 4:
        o, i, kh, kw = shape
        return f"{kh}x{kw}x{i}x{o} {KIND_WORDS[kind]}"
    if kind == "dwconv" and len(shape) == 4:
        c, _, kh, kw = shape
        return f"{kh}x{kw}x{c} dw"
    if kind == "dense" and len(shape) == 2:
        return f"{shape[1]}x{shape[0]} fc"
    if kind == "bn" and len(shape) == 1:
        return f"batchnorm of {shape[0]} channels"
    return KIND_WORDS.get(kind, kind)


def _model_words(op: ModelOp) -> str:
    sig = _model_sig(op)
    return filter_words(op.kind, sig[1] if len(sig) > 1 else None)


def _ir_words(node: Node, kind: str) -> str:
    sig = _ir_sig(node, kind)
    return filter_words(kind, sig[1] if len(sig) > 1 else None)


@dataclass
class _Unit:
    """A layer (conv, fc, join, pool) with the batchnorm and activations that follow it."""

    items: list[_Item]

    @property
    def head(self) -> _Item:
        return self.items[0]

    @property
    def sig(self) -> tuple:
        return tuple(i.sig for i in self.items)


FOLLOWERS = ("bn",) + ACT_KINDS


def _units(items: list[_Item]) -> list[_Unit]:
    units: list[_Unit] = []
    for item in items:
        if item.kind in FOLLOWERS and units:
            units[-1].items.append(item)
        else:
            units.append(_Unit([item]))
    return units


def _words(item: _Item) -> str:
    ref = item.node.ref
    if isinstance(ref, ModelOp):
        sig = _model_sig(ref, item.kind)
        return filter_words(item.kind, sig[1] if len(sig) > 1 else None)
    return _ir_words(ref, item.kind)


def _unit_words(u: _Unit) -> str:
    return " + ".join(_words(i) for i in u.items)


def _distinct_rows(units: list[_Unit]) -> list[_Unit]:
    seen, out = set(), []
    for u in units:
        line = _line(u.head.node.ref) if isinstance(u.head.node.ref, Node) else id(u)
        if line not in seen:
            seen.add(line)
            out.append(u)
    return out
