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


def _fuse_patterns(kept: dict[str, _G]) -> None:
    """Ops that graphs write as outer(x, inner(x)) (Op.import_pattern: silu is mul(x, sigmoid(x)))
    become one node of the op's kind, in place, on either side."""
    from ...ops import REGISTRY

    patterns = {op.import_pattern: op.import_kind for op in REGISTRY.values() if op.import_pattern}
    if not patterns:
        return
    uses: dict[str, int] = {}
    for n in kept.values():
        for t in n.inputs:
            uses[t] = uses.get(t, 0) + 1
    for out, n in list(kept.items()):
        if out not in kept or len(n.inputs) != 2:
            continue
        for x, g in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
            inner = kept.get(g)
            kind = patterns.get((n.kind, inner.kind)) if inner is not None else None
            if kind is not None and inner.inputs == [x] and uses.get(g) == 1:
                kept[out] = _G(kind, [x], out, n.ref, n.extra_pads)
                del kept[g]
                break


def canonical_order(nodes: list[_G], graph_input: str, output: str) -> list[_G]:
    """The nodes that reach `output`, contracted, in canonical execution order (see the module doc)."""
    kept, resolve = _contract(nodes)
    _fuse_patterns(kept)
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
