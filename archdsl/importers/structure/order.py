"""The canonical execution order both graphs are compared in (see the package doc, step 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...errors import ArchError
from .kinds import COMMUTATIVE, CONTRACTED, MAIN_KINDS

@dataclass
class _G:
    """A node of either graph, as the canonical walk sees it."""

    kind: str
    inputs: list[str]
    output: str
    ref: object               # the IR Node or the ModelOp
    extra_pads: tuple[int, int, int, int] | None = None


def _contract(nodes: list[_G]) -> tuple[dict[str, _G], Callable[[str], str]]:
    """{output tensor: node} of the nodes that stay, and a resolver through contracted ops.
    Explicit zero padding in front of a conv is added to that conv's padding."""
    alias: dict[str, tuple[str, tuple[int, int, int, int] | None]] = {}
    for n in nodes:
        if n.kind in CONTRACTED:
            alias[n.output] = (n.inputs[0], n.ref.pads if n.kind == "pad" else None)

    def resolve(t: str) -> tuple[str, tuple[int, int, int, int] | None]:
        pads = None
        seen = 0
        while t in alias and seen <= len(alias):
            t, p = alias[t]
            if p is not None:
                pads = p if pads is None else tuple(a + b for a, b in zip(pads, p))
            seen += 1
        return t, pads

    kept: dict[str, _G] = {}
    for n in nodes:
        if n.kind in CONTRACTED:
            continue
        ins, extra = [], None
        for t in n.inputs:
            r, p = resolve(t)
            ins.append(r)
            if p is not None:
                extra = p
        kept[n.output] = _G(n.kind, ins, n.output, n.ref, extra)
    return kept, lambda t: resolve(t)[0]


def canonical_order(nodes: list[_G], graph_input: str, output: str) -> list[_G]:
    """The nodes that reach `output`, contracted, in canonical execution order (see the module doc)."""
    kept, resolve = _contract(nodes)
    out = resolve(output)

    depth: dict[str, int] = {graph_input: 0}
    expanding: set[str] = set()
    stack = [out]
    while stack:  # longest path from the input, counted in conv/dense layers
        t = stack[-1]
        if t in depth:
            stack.pop()
            continue
        node = kept.get(t)
        if node is None:
            depth[t] = 0  # a tensor no op produces (a second graph input): a leaf
            stack.pop()
            continue
        todo = [i for i in node.inputs if i not in depth]
        if todo:
            if t in expanding or any(i in expanding for i in todo):
                raise ArchError(f"the graph has a cycle through '{t}'", None, "is the model file damaged?")
            expanding.add(t)
            stack.extend(todo)
            continue
        depth[t] = max((depth[i] for i in node.inputs), default=0) + (1 if node.kind in MAIN_KINDS else 0)
        stack.pop()

    order: list[_G] = []
    done: set[str] = {graph_input}
    walk: list[tuple[str, bool]] = [(out, False)]
    while walk:
        t, expanded = walk.pop()
        if t in done or t not in kept:
            continue
        node = kept[t]
        if expanded:
            done.add(t)
            order.append(node)
            continue
        walk.append((t, True))
        ins = list(node.inputs)
        if node.kind in COMMUTATIVE:
            ins = sorted(ins, key=lambda i: -depth.get(i, 0))  # stable: ties keep the model's order
        for i in reversed(ins):
            if i not in done:
                walk.append((i, False))
    return order
