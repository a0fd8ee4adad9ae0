"""The module planner: the container tree (nn.Sequential / nn.ModuleDict at every dotted prefix),
the ranks, and the lines of __init__, forward and forward_layers."""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Union

from ...errors import ArchError
from ...ir import Graph, Node
from ..common import lowering_for
from .lowering import LOWERINGS, RESHAPES, Lowering

# ---------------------------------------------------------------- the module tree


@dataclass
class Box:
    """A container: a dotted prefix shared by several nodes."""

    path: str
    children: list["Item"] = field(default_factory=list)
    sequential: bool = False

    @property
    def seg(self) -> str:
        return self.path.rsplit(".", 1)[-1]


Item = Union[Box, Node]


def _seg(item: Item) -> str:
    return item.seg if isinstance(item, Box) else item.name.rsplit(".", 1)[-1]


def _leaves(item: Item) -> list[Node]:
    if isinstance(item, Node):
        return [item]
    return [n for ch in item.children for n in _leaves(ch)]


# names a submodule cannot take: they are attributes of the containers the module uses
_RESERVED_EXTRA = {"forward_layers", "input_shape"}


def _reserved_names() -> set[str]:
    import torch.nn as nn

    names = set(_RESERVED_EXTRA)
    for obj in (nn.Module(), nn.Sequential(), nn.ModuleDict()):  # instances: training, _modules, _parameters
        names.update(dir(obj))
    return names


class Plan:
    """Everything the template needs, derived from the graph."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.users = graph.consumers()
        self.index = {n.name: i for i, n in enumerate(graph.nodes)}
        self.lowered: dict[str, Lowering] = {}
        self.rank: dict[str, int] = {graph.input_name: 4}
        self.in_rank: dict[str, int | None] = {}
        self._lower_all()
        self.root = self._tree()
        self._mark_sequential(self.root)
        self.live = self._live()

    # -- lowering and ranks
    def _lower_all(self) -> None:
        for n in self.graph.nodes:
            lower = lowering_for(LOWERINGS, n.op, "torch", n.name)
            ranks = tuple(self.rank[t] for t in n.inputs)
            first = lower(n, ranks)
            want = first.in_rank
            eff = tuple(want or r for r in ranks)
            low = lower(n, eff) if eff != ranks else first
            self.lowered[n.name] = low
            self.in_rank[n.name] = want
            self.rank[n.name] = low.out_rank or eff[0]

    def reshaped(self, node: Node, i: int, var: str) -> str:
        want = self.in_rank[node.name]
        if want is None or self.rank[node.inputs[i]] == want:
            return var
        return RESHAPES[want].format(var)

    # -- the container tree
    def _tree(self) -> Box:
        root = Box("")
        boxes = {"": root}
        leaves = {n.name for n in self.graph.nodes}
        reserved = _reserved_names()
        for n in self.graph.nodes:
            parts = n.name.split(".")
            for part in parts:
                if not part.isidentifier() or keyword.iskeyword(part) or part in reserved or part.startswith("__"):
                    raise ArchError(f"layer name '{n.name}' cannot be a PyTorch submodule path: "
                                    f"'{part}' is {'a Python keyword' if keyword.iskeyword(part) else 'taken by torch.nn.Module'}",
                                    None, "rename the row with name=")
            parent = root
            for k in range(1, len(parts)):
                path = ".".join(parts[:k])
                if path in leaves:
                    raise ArchError(f"layer '{path}' is also the container of '{n.name}'", None,
                                    "rename one of the rows with name=")
                if path not in boxes:
                    boxes[path] = Box(path)
                    parent.children.append(boxes[path])
                parent = boxes[path]
            parent.children.append(n)
        self._pads: dict[str, str] = {}
        for box in boxes.values():
            taken = {_seg(ch) for ch in box.children}
            for ch in box.children:
                if isinstance(ch, Node) and self.lowered[ch.name].pad:
                    pad = _seg(ch) + "_pad"
                    k = 2
                    while pad in taken:
                        pad, k = f"{_seg(ch)}_pad{k}", k + 1
                    taken.add(pad)
                    self._pads[ch.name] = pad
        return root

    def pad_path(self, node: Node) -> str:
        parent = node.name.rsplit(".", 1)[0] + "." if "." in node.name else ""
        return parent + self._pads[node.name]

    def _mark_sequential(self, box: Box) -> None:
        for ch in box.children:
            if isinstance(ch, Box):
                self._mark_sequential(ch)
        if box is self.root:
            return
        box.sequential = self._is_chain(box)

    def _is_chain(self, box: Box) -> bool:
        """Can `box` run as one nn.Sequential call: its layers form one chain, nothing outside
        reads a tensor inside it but the last, and no reshape is needed after the first layer?"""
        nodes = _leaves(box)
        first, last = self.index[nodes[0].name], self.index[nodes[-1].name]
        if last - first + 1 != len(nodes):
            return False  # interleaved with other layers
        for ch in box.children:
            if isinstance(ch, Box) and not ch.sequential:
                return False
            if isinstance(ch, Node) and self.lowered[ch.name].module is None:
                return False
        for prev, node in zip(nodes, nodes[1:]):
            if node.inputs != (prev.name,) or self.users[prev.name] != [node] or prev.name == self.graph.output:
                return False
            if self.reshaped(node, 0, "x") != "x":
                return False
        return len(nodes[0].inputs) == 1

    def _live(self) -> set[str]:
        live = {self.graph.output}
        for n in reversed(self.graph.nodes):
            if n.name in live:
                live.update(n.inputs)
        return live

    # -- __init__
    def constructor(self, item: Item, indent: int) -> list[str]:
        """Lines of `item`'s constructor; continuation lines indented by `indent` spaces."""
        if isinstance(item, Node):
            return [self.lowered[item.name].module]
        entries: list[tuple[str, list[str]]] = []
        for ch in item.children:
            if isinstance(ch, Node):
                low = self.lowered[ch.name]
                if low.module is None:
                    continue
                if low.pad:
                    entries.append((self._pads[ch.name], [low.pad]))
            entries.append((_seg(ch), self.constructor(ch, indent + 4)))
        kind = "nn.Sequential" if item.sequential else "nn.ModuleDict"
        pad = " " * (indent + 4)
        lines = [f"{kind}(OrderedDict("]
        for seg, ctor in entries:
            lines.append(f"{pad}{seg}={ctor[0]}")
            lines.extend(ctor[1:])
            lines[-1] += ","
        lines.append(" " * indent + "))")
        return lines

    def init_lines(self) -> list[str]:
        out = []
        for ch in self.root.children:
            if isinstance(ch, Node):
                low = self.lowered[ch.name]
                if low.module is None:
                    continue
                if low.pad:
                    out.append(f"self.{self._pads[ch.name]} = {low.pad}")
            ctor = self.constructor(ch, 0)
            out.append(f"self.{_seg(ch)} = {ctor[0]}")
            out.extend(ctor[1:])
        return out

    def helpers(self) -> list[str]:
        return sorted({low.helper for low in self.lowered.values() if low.helper})

    # -- forward
    def units(self, box: Box | None = None) -> list[Item]:
        """What forward calls, in order: whole nn.Sequential containers and single layers."""
        out: list[Item] = []
        for ch in (box or self.root).children:
            if isinstance(ch, Box) and not ch.sequential:
                out.extend(self.units(ch))
            else:
                out.append(ch)
        return sorted(out, key=lambda it: self.index[_leaves(it)[0].name])

    def call(self, node: Node, arg: str) -> str:
        """`self.<path>(arg)` for a layer with a module, its padding module first."""
        if self.lowered[node.name].pad:
            arg = f"self.{self.pad_path(node)}({arg})"
        return f"self.{node.name}({arg})"

    def expression(self, node: Node, args: list[str]) -> str:
        args = [self.reshaped(node, i, a) for i, a in enumerate(args)]
        low = self.lowered[node.name]
        if low.module is not None:
            return self.call(node, args[0])
        return low.expr.format(*args, all=", ".join(args))

    def forward_lines(self) -> list[tuple[str, str]]:
        """(statement, comment) pairs of forward."""
        units = [u for u in self.units() if _leaves(u)[-1].name in self.live]  # dead branches are skipped
        outs = [_leaves(u)[-1].name for u in units]
        last_use: dict[str, int] = {self.graph.output: len(units)}
        for i, u in enumerate(units):
            for t in self._unit_inputs(u):
                last_use[t] = max(last_use.get(t, -1), i)
        var = {self.graph.input_name: "x"}
        lines: list[tuple[str, str]] = []
        pool = ["x", "y", "z", "w", "v"]
        in_use = {"x"}
        group = None
        for i, (u, out) in enumerate(zip(units, outs)):
            ins = self._unit_inputs(u)
            args = [var[t] for t in ins]
            dying = [var[t] for t in dict.fromkeys(ins) if last_use[t] == i]
            if "x" in dying:
                target = "x"
            elif dying:
                target = dying[0]
            else:
                target = next((p for p in pool if p not in in_use), None)
                k = len(pool)
                while target is None or target in in_use:
                    target, k = f"t{k}", k + 1
            for v in dying:
                if v != target:
                    in_use.discard(v)
            in_use.add(target)
            var[out] = target
            if isinstance(u, Box) or self.lowered[u.name].module is not None:
                first = _leaves(u)[0]
                arg = self.reshaped(first, 0, args[0])
                expr = f"self.{u.path}({arg})" if isinstance(u, Box) else self.call(u, arg)
            else:
                shaped = [self.reshaped(u, j, a) for j, a in enumerate(args)]
                if u.op.name == "add" and args[1] == target and args[0] != target:
                    shaped.reverse()  # x = x + y: the running value first (a + b == b + a exactly)
                expr = self.lowered[u.name].expr.format(*shaped, all=", ".join(shaped))
            owner = self._owner(u)
            if owner and owner != group and not (group or "").startswith(owner + "."):
                lines.append(("", owner))
            group = owner
            lines.append((f"{target} = {expr}", self._comment(u)))
        lines.append((f"return {var[self.graph.output]}", ""))
        return lines

    def _unit_inputs(self, u: Item) -> tuple[str, ...]:
        if isinstance(u, Box):
            return _leaves(u)[0].inputs
        return u.inputs

    def _owner(self, u: Item) -> str:
        """The ModuleDict container a unit sits in (forward groups its lines under it)."""
        path = u.path if isinstance(u, Box) else u.name
        return path.rsplit(".", 1)[0] if "." in path else ""

    def _comment(self, u: Item) -> str:
        nodes = _leaves(u)
        rows = {}
        for n in nodes:
            rows.setdefault(n.row.line, n.row)
        texts = [_row_text(rows[k]) for k in sorted(rows)]
        joined = "; ".join(texts)
        if len(texts) == 1 or len(joined) <= 72:
            return joined
        return f"spec lines {min(rows)}-{max(rows)}"

    # -- forward_layers
    def layer_lines(self) -> list[str]:
        out = []
        for n in self.graph.nodes:
            args = ["x" if t == self.graph.input_name else f'out["{t}"]' for t in n.inputs]
            out.append(f'out["{n.name}"] = {self.expression(n, args)}')
        return out

    # -- the state_dict, in the order model.state_dict() lists it
    def state_keys(self, item: Item | None = None) -> list[tuple[str, str | None]]:
        """(key, IR key or None for BatchNorm's num_batches_tracked)."""
        out: list[tuple[str, str | None]] = []
        for ch in (item or self.root).children:
            if isinstance(ch, Box):
                out.extend(self.state_keys(ch))
                continue
            for local in ch.params:
                out.append((ch.param_key(local), ch.param_key(local)))
            if ch.op.name == "bn":
                out.append((ch.param_key("num_batches_tracked"), None))
        return out


def _row_text(row) -> str:
    """A spec row for a comment: no trailing comment or brace, column gaps two spaces wide."""
    text = row.text.split("#", 1)[0].rstrip().rstrip("{").strip()
    return re.sub(r"[ \t]{2,}|\t", "  ", text)
