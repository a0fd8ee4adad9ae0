"""The PyTorch target: `<name>.py`, a readable `nn.Module`, and `<name>.pt`, its state_dict.

The module mirrors the IR's names. Every dotted prefix of a node name is a
submodule: a run of single-input layers that feed one another (a conv row with its
BN and activation, a block without a branch) is an `nn.Sequential`, any other
container (a residual, scale or concat body, a block with one inside) is an
`nn.ModuleDict`, and every layer with weights or behaviour is a standard `torch.nn`
module at its IR path. So `model.state_dict()` has exactly the IR parameter keys
(`conv3.conv.weight`, `conv3.bn.running_mean`; plus BatchNorm's
`num_batches_tracked`, which weight loaders ignore). `forward` follows the spec
row by row, each line commented with its spec row; residuals, gates and concats
are written out as `+`, `*` and `torch.cat`.

Tensors are NCHW, except that the output of `fc` and `flatten` stays (N, F), as a
hand-written classifier keeps it; a layer that needs the other rank gets its input
reshaped in place (`torch.flatten(x, 1)` or `x[:, :, None, None]`), and `run`
reports a (N, F) result as (N, F, 1, 1), the IR's 1x1xF.

The generated file imports only torch and collections. Besides the class it has
`build(weights_path=None)`, which loads a state_dict with `weights_only=True`.
Same graph and weights, same bytes in both files.
"""
from __future__ import annotations

import importlib.util
import io
import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import numpy as np

from ..errors import ArchError
from ..ir import Graph, Node

NAME = "torch"
EXTRA = "torch"
TEMPLATE = "torch/module.py.j2"
COMMENT_COLUMN_MAX = 56  # forward's comments line up at the widest statement, up to this column


def unavailable() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "the torch target needs PyTorch: pip install 'archdsl[torch]'"
    return None


# ---------------------------------------------------------------- lowerings (one per op)


@dataclass(frozen=True)
class Lowering:
    """How one IR node appears in the generated module.

    module  -- constructor text of its torch.nn module (None: the node is an expression in forward)
    pad     -- constructor of a padding module that runs just before it (asymmetric padding)
    expr    -- forward expression of a module-less node; {0}, {1}, … are its inputs, {all} all of them
    in_rank -- the rank its inputs must have: 4 (N, C, H, W) or 2 (N, F); None keeps them as they are
    out_rank-- the rank of its output; None: the rank of its (first) input
    helper  -- a helper class of the template that `module` uses
    """

    module: str | None = None
    pad: str | None = None
    expr: str | None = None
    in_rank: int | None = None
    out_rank: int | None = None
    helper: str | None = None


def _num(v) -> str:
    """A Python literal that round-trips: %.9g for floats."""
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, float):
        text = f"{v:.9g}"
        return text if any(ch in text for ch in ".en") else text + ".0"
    return str(int(v))


def _pair(t) -> str:
    a, b = t
    return _num(a) if a == b else f"({_num(a)}, {_num(b)})"


def _args(*positional: str, **keywords: str | None) -> str:
    return ", ".join([*positional, *(f"{k}={v}" for k, v in keywords.items() if v is not None)])


def _symmetric(pads) -> tuple[int, int] | None:
    """(top, left) when top == bottom and left == right, else None."""
    t, l, b, r = pads
    return (t, l) if (t, l) == (b, r) else None


def _pad_arg(pads) -> str:
    """F.pad / nn.ZeroPad2d order: (left, right, top, bottom)."""
    t, l, b, r = pads
    return f"({_num(l)}, {_num(r)}, {_num(t)}, {_num(b)})"


def _conv(n: Node, ranks) -> Lowering:
    a = n.attrs
    sym = _symmetric(a["pads"])
    pad = None if sym is not None else f"nn.ZeroPad2d({_pad_arg(a['pads'])})"
    padding = sym if sym is not None else (0, 0)
    cin, cout, groups = n.in_shapes[0].c, a["out_channels"], a["groups"]
    module = "nn.Conv2d(" + _args(
        _num(cin), _num(cout), _pair(a["kernel"]),
        stride=_pair(a["stride"]) if tuple(a["stride"]) != (1, 1) else None,
        padding=_pair(padding) if tuple(padding) != (0, 0) else None,
        groups=_num(groups) if groups != 1 else None,
        bias=None if a["bias"] else "False") + ")"
    return Lowering(module=module, pad=pad, in_rank=4)


def _bn(n: Node, ranks) -> Lowering:
    eps = float(n.attrs["eps"])
    kind = "nn.BatchNorm1d" if ranks[0] == 2 else "nn.BatchNorm2d"
    return Lowering(module=f"{kind}(" + _args(_num(n.out_shape.c), eps=None if eps == 1e-5 else _num(eps)) + ")")


def _window(n: Node) -> dict:
    a = n.attrs
    return {"kernel": _pair(a["kernel"]),
            "stride": _pair(a["stride"]) if tuple(a["stride"]) != tuple(a["kernel"]) else None}


def _avg_pool(n: Node, ranks) -> Lowering:
    a = n.attrs
    if a.get("global"):
        return Lowering(module="nn.AdaptiveAvgPool2d(1)", in_rank=4)
    w = _window(n)
    sym = _symmetric(a["pads"])
    (kh, kw) = a["kernel"]
    if sym is not None and sym[0] <= kh // 2 and sym[1] <= kw // 2:
        padded = sym != (0, 0)
        return Lowering(module="nn.AvgPool2d(" + _args(
            w["kernel"], stride=w["stride"], padding=_pair(sym) if padded else None,
            count_include_pad="False" if padded else None) + ")", in_rank=4)
    # Asymmetric (TensorFlow SAME) or wider than half the window: a helper that still
    # averages over the real pixels only.
    return Lowering(module="PaddedAvgPool2d(" + _args(
        _pair(a["kernel"]), _pair(a["stride"]), _pad_arg(a["pads"])) + ")", in_rank=4, helper="PaddedAvgPool2d")


def _max_pool(n: Node, ranks) -> Lowering:
    a = n.attrs
    if a.get("global"):
        return Lowering(module="nn.AdaptiveMaxPool2d(1)", in_rank=4)
    w = _window(n)
    sym = _symmetric(a["pads"])
    (kh, kw) = a["kernel"]
    if sym is not None and sym[0] <= kh // 2 and sym[1] <= kw // 2:
        return Lowering(module="nn.MaxPool2d(" + _args(
            w["kernel"], stride=w["stride"], padding=_pair(sym) if sym != (0, 0) else None) + ")", in_rank=4)
    return Lowering(module="nn.MaxPool2d(" + _args(w["kernel"], stride=w["stride"]) + ")",
                    pad=f'nn.ConstantPad2d({_pad_arg(a["pads"])}, float("-inf"))', in_rank=4)


def _fc(n: Node, ranks) -> Lowering:
    a = n.attrs
    return Lowering(module="nn.Linear(" + _args(_num(n.in_shapes[0].numel), _num(a["out_features"]),
                                                bias=None if a["bias"] else "False") + ")", in_rank=2)


def _module(text: str, **kw) -> Callable[[Node, tuple], Lowering]:
    def lower(n: Node, ranks) -> Lowering:
        return Lowering(module=text, **kw)
    return lower


def _dropout(n: Node, ranks) -> Lowering:
    return Lowering(module=f"nn.Dropout({_num(float(n.attrs['p']))})")


def _join(expr: str) -> Callable[[Node, tuple], Lowering]:
    """add / mul / concat: inputs of mixed rank meet as (N, C, H, W)."""
    def lower(n: Node, ranks) -> Lowering:
        return Lowering(expr=expr, in_rank=None if len(set(ranks)) == 1 else 4)
    return lower


LOWERINGS: dict[str, Callable[[Node, tuple], Lowering]] = {
    "conv": _conv,
    "conv dw": _conv,  # groups == C_in is in the attrs
    "bn": _bn,
    "relu": _module("nn.ReLU()"),
    "relu6": _module("nn.ReLU6()"),
    "sigmoid": _module("nn.Sigmoid()"),
    "hsigmoid": _module("nn.Hardsigmoid()"),  # relu6(x + 3) / 6
    "hswish": _module("nn.Hardswish()"),  # x * relu6(x + 3) / 6
    "softmax": _module("nn.Softmax(dim=1)"),  # over channels
    "avg pool": _avg_pool,
    "max pool": _max_pool,
    "global avg pool": _avg_pool,
    "global max pool": _max_pool,
    "fc": _fc,
    "flatten": _module("nn.Flatten()", out_rank=2),  # C, H, W order
    "dropout": _dropout,
    "add": _join("{0} + {1}"),
    "mul": _join("{0} * {1}"),  # a 1x1xC gate broadcasts over H x W
    "concat": _join("torch.cat([{all}], dim=1)"),
}

RESHAPES = {4: "{}[:, :, None, None]", 2: "torch.flatten({}, 1)"}  # to that rank


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
    for cls in (nn.Module, nn.Sequential, nn.ModuleDict):
        names.update(a for a in dir(cls) if not a.startswith("__"))
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
            lower = LOWERINGS.get(n.op.name)
            if lower is None:
                raise ArchError(f"the torch target has no lowering for '{n.op.name}' (layer {n.name})")
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
                if not part.isidentifier() or keyword.iskeyword(part) or part in reserved:
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


# ---------------------------------------------------------------- writing


def class_name(graph: Graph) -> str:
    """mobilenet_v1 -> MobilenetV1."""
    name = "".join(part[:1].upper() + part[1:] for part in graph.name.split("_") if part) or "Network"
    if not name[0].isalpha():
        name = "Net" + name
    if name in ("OrderedDict", "PaddedAvgPool2d", "F", "nn", "torch", "build"):
        name += "Net"
    return name


def _source_name(graph: Graph) -> str:
    return Path(graph.source_name.replace("\\", "/")).name  # never an absolute path in the file


def _row_text(row) -> str:
    """A spec row for a comment: no trailing comment or brace, column gaps two spaces wide."""
    text = row.text.split("#", 1)[0].rstrip().rstrip("{").strip()
    return re.sub(r"[ \t]{2,}|\t", "  ", text)


def _align(lines: list[tuple[str, str]]) -> list[str]:
    width = min(COMMENT_COLUMN_MAX, max((len(code) for code, c in lines if code and c), default=0))
    out = []
    for code, comment in lines:
        if not code:
            out.append(f"# {comment}")
        elif comment:
            out.append(f"{code.ljust(width)}  # {comment}")
        else:
            out.append(code)
    return out


def module_source(graph: Graph, name: str) -> str:
    """The text of `<name>.py` for `graph`."""
    import jinja2

    from ..resources import templates_dir

    plan = Plan(graph)
    params = ", ".join(f"{k}={_num(v) if isinstance(v, (int, float)) else v}" for k, v in graph.params.items())
    n_params = sum(spec.numel for _, spec in graph.parameters() if spec.role in ("weight", "bias"))
    macs = sum(n.macs for n in graph.nodes)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    text = env.get_template(TEMPLATE).render(
        network=graph.name, params=params, source=_source_name(graph), cls=class_name(graph),
        input=graph.input_shape, output=graph.output_shape, output_rank=plan.rank[graph.output],
        n_params=f"{n_params:,}", macs=f"{macs:,}", width_rule=graph.width_rule,
        helpers=plan.helpers(), init=plan.init_lines(), forward=_align(plan.forward_lines()),
        layers=plan.layer_lines(), functional=bool(plan.helpers()),
    )
    return text


def state_dict(graph: Graph, weights: dict[str, np.ndarray]):
    """The generated module's state_dict holding `weights` (checked against the graph)."""
    import torch
    from collections import OrderedDict

    from ..weights import check_weights

    weights = check_weights(weights, graph, "the weights")
    sd = OrderedDict()
    for key, ir_key in Plan(graph).state_keys():
        if ir_key is None:
            sd[key] = torch.tensor(0, dtype=torch.long)
        else:
            sd[key] = torch.from_numpy(np.array(weights[ir_key], dtype=np.float32, copy=True))
    return sd


def state_dict_bytes(graph: Graph, weights: dict[str, np.ndarray]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state_dict(graph, weights), buf)
    return buf.getvalue()


def compile(graph: Graph, weights: dict[str, np.ndarray], outdir, name: str) -> list[Path]:
    """Write `<outdir>/<name>.py` (the nn.Module) and `<outdir>/<name>.pt` (its state_dict)."""
    from ..fsutil import write_files_atomically

    files = {f"{name}.py": module_source(graph, name), f"{name}.pt": state_dict_bytes(graph, weights)}
    return write_files_atomically(outdir, files)


# ---------------------------------------------------------------- running


def _paths(outdir, name: str) -> tuple[Path, Path]:
    py, pt = Path(outdir) / f"{name}.py", Path(outdir) / f"{name}.pt"
    for path in (py, pt):
        if not path.is_file():
            raise ArchError(f"no PyTorch module at {path}", None, "write it first: archdsl compile --target torch")
    return py, pt


def load_module(outdir, name: str):
    """Import the generated `<outdir>/<name>.py` as a Python module (not added to sys.modules)."""
    py, _ = _paths(outdir, name)
    spec = importlib.util.spec_from_file_location(f"archdsl_torch_{name}", py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_model(outdir, name: str):
    """The generated module with its saved weights, in eval mode."""
    _, pt = _paths(outdir, name)
    return load_module(outdir, name).build(str(pt))


def _input(model, x: np.ndarray):
    import torch

    x = np.ascontiguousarray(x, dtype=np.float32)
    want = tuple(model.input_shape)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise ArchError(f"input has shape {tuple(x.shape)}, the model takes (N, {', '.join(map(str, want))})",
                        None, "inputs are float32 NCHW batches")
    return torch.from_numpy(x)


def _as_nchw(t) -> np.ndarray:
    """A (N, F) result as the IR's (N, F, 1, 1)."""
    arr = t.detach().cpu().numpy()
    return arr.reshape(arr.shape + (1, 1)) if arr.ndim == 2 else arr


def run(outdir, name: str, x: np.ndarray) -> np.ndarray:
    """Run the generated module (eval mode) on an NCHW float32 batch; returns (N, C, H, W)."""
    import torch

    model = load_model(outdir, name)
    with torch.inference_mode():
        return _as_nchw(model(_input(model, x)))


def run_layers(outdir, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """{IR node name: its output (N, C, H, W)} for every layer, from the module's forward_layers."""
    import torch

    model = load_model(outdir, name)
    with torch.inference_mode():
        return {k: _as_nchw(v) for k, v in model.forward_layers(_input(model, x)).items()}
