"""The structural matcher: a trained model's tensors onto a spec's parameters, by graph structure.

Names mean nothing across frameworks (`conv2d_5`, `model/conv2d_5/Conv2D`, `onnx::Conv_17`), so the
match uses only what both sides agree on: the order of operations and the shapes of the weights.

1. Each format's reader (tflite.py, keras_h5.py, onnx_model.py) turns the model into a ModelGraph:
   a list of ModelOps, each of one *kind* (conv, dwconv, gconv, dense, bn, add, mul, concat, an
   activation, a pool; `pass` for pure data movement such as reshape/flatten/dropout, `pad` for
   explicit zero padding), with its parameter tensors as stored and their layout (OHWI, HWIO, ...).
   Fused activations (TFLite's RELU on a CONV_2D, Keras' Dense(activation='softmax')) become ops of
   their own.
2. Both graphs, the spec's IR and the model, are put in one canonical execution order: a
   depth-first walk back from the output, where the inputs of a commutative join (add, mul) are
   taken deepest branch first (the residual body before its shortcut). A model whose converter
   listed the shortcut first, or wrote `add(shortcut, body)`, gives the same sequence as the spec.
   `pass` ops are contracted away.
3. The two sequences are aligned item by item (kind and weight shape in the IR layout); the first
   difference is reported on the spec row it concerns: a wrong shape, a row the model lacks, or
   model layers the spec lacks. Then each pair is checked in detail (bias, BN size and eps, stride,
   padding) and its tensors are converted to the IR layout.

BatchNorm, "as the source has it": when the model has no BN at all but the spec has BN after its
convolutions (TFLite and most converted graphs fold BN into the conv), the model's folded weight
and bias go into the conv and the BN is set to the identity: γ = 1, β = 0, mean = 0 and
var = 1 − eps, so that γ/√(var + eps) = 1. A conv without bias puts the folded bias into β instead.
A model with BN layers (Keras .h5, an ONNX export of a training graph) maps them one to one.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ArchError, Loc
from ..ir import Graph, Node

MAIN_KINDS = ("conv", "dwconv", "gconv", "dense")
PARAM_KINDS = MAIN_KINDS + ("bn",)
JOIN_KINDS = ("add", "mul", "concat")
COMMUTATIVE = ("add", "mul")
ACT_KINDS = ("relu", "relu6", "sigmoid", "hsigmoid", "hswish", "softmax")
POOL_KINDS = ("avgpool", "maxpool")
CONTRACTED = ("pass", "pad")

KIND_WORDS = {
    "conv": "conv", "dwconv": "depthwise conv", "gconv": "grouped conv", "dense": "fully connected",
    "bn": "batchnorm", "add": "add", "mul": "mul", "concat": "concat", "avgpool": "average pool",
    "maxpool": "max pool", "relu": "ReLU", "relu6": "ReLU6", "sigmoid": "sigmoid",
    "hsigmoid": "hard sigmoid", "hswish": "hard swish", "softmax": "softmax",
}

# The kind of each IR op. Every op of archdsl.ops must be here (tests/test_import_matcher.py checks it).
IR_KINDS = {
    "conv": "conv", "conv dw": "dwconv", "fc": "dense", "bn": "bn",
    "add": "add", "mul": "mul", "concat": "concat",
    "relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "hsigmoid": "hsigmoid", "hswish": "hswish",
    "softmax": "softmax",
    "avg pool": "avgpool", "global avg pool": "avgpool", "max pool": "maxpool", "global max pool": "maxpool",
    "flatten": "pass", "dropout": "pass",
}

BN_LOCALS = ("weight", "bias", "running_mean", "running_var")


def conv_kind(groups: int, in_channels: int | None) -> str:
    """conv, dwconv (one group per input channel) or gconv, the same rule on both sides."""
    if groups == 1:
        return "conv"
    return "dwconv" if in_channels is not None and groups == in_channels else "gconv"


# ================================================================ layouts

def _perm(order: tuple[int, ...]):
    return (lambda shape: tuple(shape[i] for i in order), lambda a: np.transpose(a, order))


def _hwcm_shape(s):
    return (s[2] * s[3], 1, s[0], s[1])


def _hwcm_array(a):
    h, w, c, m = a.shape
    return np.transpose(a, (2, 3, 0, 1)).reshape(c * m, 1, h, w)


# layout name -> (shape in the model -> shape in the IR, array -> array). IR layouts: conv (O, I/g, kh, kw),
# depthwise (C·m, 1, kh, kw), dense (out, in), vectors (C,).
LAYOUTS: dict[str, tuple[Callable, Callable]] = {
    "OIHW": _perm((0, 1, 2, 3)),   # ONNX, PyTorch
    "OHWI": _perm((0, 3, 1, 2)),   # TFLite CONV_2D
    "1HWC": _perm((3, 0, 1, 2)),   # TFLite DEPTHWISE_CONV_2D (C = channels x multiplier)
    "HWIO": _perm((3, 2, 0, 1)),   # Keras Conv2D
    "HWCM": (_hwcm_shape, _hwcm_array),  # Keras DepthwiseConv2D (kh, kw, C, multiplier)
    "OI": _perm((0, 1)),           # TFLite FULLY_CONNECTED, ONNX Gemm(transB=1)
    "IO": _perm((1, 0)),           # Keras Dense, ONNX MatMul / Gemm(transB=0)
    "C": _perm((0,)),
}


def ir_shape_of(t: "ModelTensor") -> tuple[int, ...] | None:
    shape = tuple(int(d) for d in t.array.shape)
    rank = {"C": 1, "OI": 2, "IO": 2}.get(t.layout, 4)
    if len(shape) != rank:
        return None
    return tuple(LAYOUTS[t.layout][0](shape))


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")" if shape is not None else "?"


# ================================================================ the model side


@dataclass
class ModelTensor:
    """One parameter tensor of the model, as stored, and the name of its layout (see LAYOUTS)."""

    name: str
    array: np.ndarray
    layout: str


@dataclass
class ModelOp:
    name: str                 # the op's or layer's name in the model
    label: str                # its type in the model's own words: CONV_2D, Conv2D, Conv
    kind: str
    inputs: list[str]         # activation tensors only (constants are in params)
    output: str
    params: dict[str, ModelTensor] = field(default_factory=dict)  # IR local name -> tensor
    stride: tuple[int, int] | None = None
    padding: object = None    # "same" (TensorFlow SAME), (top, left, bottom, right), or None: unknown
    eps: float | None = None  # bn
    pads: tuple[int, int, int, int] | None = None  # kind "pad"

    def describe(self) -> str:
        return f"{self.label} '{self.name}'"

    def short(self) -> str:
        """The label and a readable name: converters join several names with ';' (TFLite), keep
        the part that names a layer."""
        parts = [p for p in self.name.split(";") if p]
        if len(parts) > 1:
            layer_words = ("conv", "dense", "matmul", "depthwise", "add", "pool", "softmax")
            named = [p for p in parts if any(w in p.rsplit("/", 1)[-1].lower() for w in layer_words)]
            name = (named or parts)[0] + ";…"
        else:
            name = self.name
        return f"{self.label} '{name}'" if name else self.label


@dataclass
class ModelGraph:
    format: str               # "TFLite", "Keras .h5", "ONNX"
    ops: list[ModelOp]
    input: str
    output: str
    input_hwc: tuple[int, int, int] | None
    flatten: str = "hwc"      # the order in which the model flattens a feature map for a dense layer


# ================================================================ canonical order


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


# ================================================================ the mapping


@dataclass
class MapRow:
    """One line of the mapping table."""

    line: int
    ir_key: str
    model_tensor: str
    model_shape: tuple[int, ...] | None
    ir_shape: tuple[int, ...]
    note: str = ""


@dataclass
class ImportResult:
    weights: dict[str, np.ndarray]
    rows: list[MapRow]
    model_format: str
    bn_folded: bool


@dataclass
class _Item:
    kind: str
    sig: tuple
    node: _G


def _ir_nodes(graph: Graph) -> list[_G]:
    out = []
    for n in graph.nodes:
        kind = IR_KINDS.get(n.op.name)
        if kind is None:
            raise ArchError(f"importing weights into '{n.op.name}' rows is not supported yet", _loc(n))
        if kind in ("conv", "dwconv"):
            kind = conv_kind(int(n.attrs.get("groups", 1)), n.in_shapes[0].c)
        out.append(_G(kind, list(n.inputs), n.name, n))
    return out


def _model_nodes(model: ModelGraph) -> list[_G]:
    return [_G(op.kind, list(op.inputs), op.output, op) for op in model.ops]


def _ir_sig(node: Node, kind: str) -> tuple:
    if kind in MAIN_KINDS:
        return (kind, tuple(node.params["weight"].shape))
    if kind == "bn":
        return (kind, tuple(node.params["weight"].shape))
    return (kind,)


def _model_sig(op: ModelOp) -> tuple:
    if op.kind in MAIN_KINDS:
        return (op.kind, ir_shape_of(op.params["weight"]) if "weight" in op.params else None)
    if op.kind == "bn":
        t = next(iter(op.params.values()), None)
        return (op.kind, ir_shape_of(t) if t is not None else None)
    return (op.kind,)


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
        sig = _model_sig(ref)
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


class _Matcher:
    def __init__(self, graph: Graph, model: ModelGraph):
        self.graph, self.model = graph, model
        self.weights: dict[str, np.ndarray] = {}
        self.rows: list[MapRow] = []

    # ------------------------------------------------------------ errors
    def error(self, node: Node | None, message: str, hint: str | None = None, notes=None) -> ArchError:
        return ArchError(message, _loc(node) if node is not None else None, hint, notes)

    # ------------------------------------------------------------ main
    def run(self) -> ImportResult:
        g, m = self.graph, self.model
        self.check_input()
        ir_seq = canonical_order(_ir_nodes(g), g.input_name, g.output)
        m_seq = canonical_order(_model_nodes(m), m.input, m.output)
        model_has_bn = any(n.kind == "bn" for n in m_seq)
        self.folded = not model_has_bn and any(n.kind == "bn" for n in ir_seq)

        ir_items: list[_Item] = []
        self.folded_bn: dict[str, Node] = {}   # main node name -> the BN folded after it
        produced = {n.output: n for n in ir_seq}
        for n in ir_seq:
            if n.kind == "bn" and self.folded:
                src = produced.get(n.inputs[0])
                if src is None or src.kind not in MAIN_KINDS:
                    raise self.error(n.ref, f"the {m.format} model has batchnorm folded into its convolutions, "
                                            "but this batchnorm does not follow a conv or fc row",
                                     "import a model that keeps its batchnorm layers (e.g. the Keras .h5)")
                self.folded_bn[src.output] = n.ref
                continue
            ir_items.append(_Item(n.kind, _ir_sig(n.ref, n.kind), n))
        m_items = [_Item(n.kind, _model_sig(n.ref), n) for n in m_seq]

        self.align(ir_items, m_items)
        for a, b in zip(ir_items, m_items):
            self.pair(a.node.ref, a.kind, b.node)
        from ..weights import check_weights

        weights = check_weights(self.weights, g, f"the weights imported from the {m.format} model")
        return ImportResult(weights, self.rows, m.format, self.folded)

    def check_input(self) -> None:
        g, m = self.graph, self.model
        want = (g.input_shape.h, g.input_shape.w, g.input_shape.c)
        if m.input_hwc is not None and tuple(m.input_hwc) != want:
            h, w, c = m.input_hwc
            raise ArchError(f"the {m.format} model's input is {h}x{w}x{c}, the spec's is {g.input_shape}",
                            None, "write the model's input size on the spec's `input` line (or --set rho=...)")

    # ------------------------------------------------------------ alignment
    def align(self, ir_items: list[_Item], m_items: list[_Item]) -> None:
        """Align the two sequences unit by unit (a layer with the batchnorm and activations that
        follow it), then report the first difference on the spec row it concerns."""
        if [i.sig for i in ir_items] == [i.sig for i in m_items]:
            return
        ui, um = _units(ir_items), _units(m_items)
        fmt = self.model.format
        matcher = difflib.SequenceMatcher(None, [u.sig for u in ui], [u.sig for u in um], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            if tag == "replace":
                for u, v in zip(ui[i1:i2], um[j1:j2]):
                    if u.sig != v.sig:
                        self.unit_mismatch(u, v)
                if i2 - i1 > j2 - j1:
                    tag, i1, j1 = "delete", i1 + (j2 - j1), j2
                else:
                    tag, i1, j1 = "insert", i2, j1 + (i2 - i1)
            if tag == "delete":  # spec rows the model lacks
                rows = _distinct_rows(ui[i1:i2])
                before = um[j1 - 1].head.node.ref.short() if j1 > 0 else "its input"
                after = um[j1].head.node.ref.short() if j1 < len(um) else "its output"
                first = rows[0]
                raise self.error(first.head.node.ref,
                                 f"this row ({_unit_words(first)}) has no counterpart in the {fmt} model, "
                                 f"which goes from {before} to {after}",
                                 "is the row extra, or a repeat count too high?",
                                 notes=[(_loc(u.head.node.ref), f"no counterpart either: {_unit_words(u)}")
                                        for u in rows[1:4]])
            if tag == "insert":  # model layers the spec lacks
                extra = um[j1:j2]
                names = "; ".join(f"{u.head.node.ref.short()} ({_unit_words(u)})" for u in extra[:4])
                more = f" and {len(extra) - 4} more" if len(extra) > 4 else ""
                at_end = i1 >= len(ui)
                where = ui[-1].head.node.ref if at_end else ui[i1].head.node.ref
                raise self.error(where, f"the {fmt} model has {len(extra)} layer(s) with no row in the spec "
                                        f"{'after' if at_end else 'before'} this row: {names}{more}",
                                 "a row missing from the spec, or a repeat count too low?")

    def unit_mismatch(self, u: "_Unit", v: "_Unit") -> None:
        for x, y in zip(u.items, v.items):
            if x.sig != y.sig:
                self.mismatch(x, y)
        fmt = self.model.format
        theirs = f"the {fmt} model's {v.head.node.ref.short()} ({_unit_words(v)})"
        if len(u.items) > len(v.items):
            x = u.items[len(v.items)]
            raise self.error(x.node.ref, f"this row ({_unit_words(u)}) has one {_words(x)} more than {theirs}",
                             "remove it from the row's after= (or from the spec's `after` line)")
        y = v.items[len(u.items)]
        raise self.error(u.head.node.ref, f"{theirs} has a {_words(y)} "
                                          f"this row ({_unit_words(u)}) lacks",
                         "add it to the row's after= (or to the spec's `after` line)")

    def mismatch(self, x: _Item, y: _Item) -> None:
        node, op = x.node.ref, y.node.ref
        if x.kind != y.kind:
            raise self.error(node, f"the spec and the {self.model.format} model differ here: the row's "
                                   f"{_ir_words(node, x.kind)}, the model's {op.short()} ({_model_words(op)})",
                             "a row missing, extra or of another type?")
        # same kind, different weight shape
        t = op.params.get("weight") or next(iter(op.params.values()), None)
        key = node.param_key("weight")
        have = tuple(t.array.shape) if t is not None else None
        conv = ir_shape_of(t) if t is not None else None
        whose = op.label if t is not None and t.name == op.name else op.short()
        raise self.error(node, f"{key}: the model's tensor '{t.name if t else '?'}' ({whose}) has shape "
                               f"{fmt_shape(have)} ({t.layout if t else '?'}) -> {fmt_shape(conv)}, "
                               f"the spec needs {fmt_shape(x.sig[1])}",
                         f"the model's layer is a {filter_words(y.kind, conv)}; "
                         f"the row says {filter_words(x.kind, x.sig[1])}")

    # ------------------------------------------------------------ one pair
    def put(self, node: Node, local: str, value: np.ndarray, tensor: str, model_shape, note: str = "",
            record: bool = True) -> None:
        key = node.param_key(local)
        want = tuple(node.params[local].shape)
        value = np.asarray(value)
        if tuple(value.shape) != want:
            raise self.error(node, f"{key}: the model's tensor '{tensor}' has shape {fmt_shape(model_shape)} "
                                   f"-> {fmt_shape(value.shape)}, the spec needs {fmt_shape(want)}")
        if not np.issubdtype(value.dtype, np.floating):
            raise ArchError(f"the model's tensor '{tensor}' is {value.dtype}, not float", None,
                            "quantized models are not supported; use a float model")
        self.weights[key] = np.ascontiguousarray(value, dtype=np.float32)
        if record:
            self.rows.append(MapRow(_line(node), key, tensor, model_shape, want, note))

    def pair(self, node: Node, kind: str, g: _G) -> None:
        op: ModelOp = g.ref
        if kind in MAIN_KINDS:
            self.check_geometry(node, op, g)
            self.pair_main(node, kind, op)
        elif kind == "bn":
            self.pair_bn(node, op)

    def check_geometry(self, node: Node, op: ModelOp, g: _G) -> None:
        if "stride" not in node.attrs:
            return
        if op.stride is not None and tuple(op.stride) != tuple(node.attrs["stride"]):
            sh, sw = op.stride
            raise self.error(node, f"this row has stride {_fmt_pair(node.attrs['stride'])}; "
                                   f"the model's {op.short()} has stride {_fmt_pair((sh, sw))}",
                             "a missing or extra row before this one, or a wrong /sN?")
        want = None
        from ..ops.base import padding_for

        if op.padding == "same" and g.extra_pads is None:
            x = node.in_shapes[0]
            want = padding_for("same_tf", tuple(node.attrs["kernel"]), tuple(node.attrs["stride"]), (x.h, x.w), None)
            how = "TensorFlow SAME"
        elif isinstance(op.padding, tuple):
            want = tuple(op.padding)
            if g.extra_pads is not None:
                want = tuple(a + b for a, b in zip(want, g.extra_pads))
            how = "explicit"
        if want is not None and tuple(want) != tuple(node.attrs["pads"]):
            hint = ("write pad=same_tf on the row (or `defaults conv: pad=same_tf`): TensorFlow's SAME pads the odd "
                    "pixel after" if how == "TensorFlow SAME" else
                    f"write pad= on the row to match (top, left, bottom, right) = {tuple(want)}")
            raise self.error(node, f"padding: the model's {op.short()} pads (top, left, bottom, right) = "
                                   f"{tuple(want)} ({how}), the spec's row {tuple(node.attrs['pads'])}", hint)

    def pair_main(self, node: Node, kind: str, op: ModelOp) -> None:
        w = op.params["weight"]
        arr = LAYOUTS[w.layout][1](w.array)
        note = f"{w.layout} -> IR" if w.layout not in ("OIHW", "OI") else ""
        if kind == "dense":
            arr, perm_note = self.dense_order(node, arr)
            note = "; ".join(x for x in (note, perm_note) if x)
        bn = self.folded_bn.get(node.name)
        self.put(node, "weight", arr, w.name, tuple(w.array.shape), note)

        b = op.params.get("bias")
        cout = int(node.params["weight"].shape[0])
        bias = LAYOUTS[b.layout][1](b.array) if b is not None else None
        if "bias" in node.params:
            if b is not None:
                self.put(node, "bias", bias, b.name, tuple(b.array.shape))
            else:
                self.put(node, "bias", np.zeros(cout, np.float32), "(none)", None, "zeros: the model has no bias")
        if bn is not None:
            self.identity_bn(bn, bias if (b is not None and "bias" not in node.params) else None,
                             b.name if b is not None else "")
        elif b is not None and "bias" not in node.params and np.any(np.asarray(b.array) != 0):
            raise self.error(node, f"the model's {op.short()} has a bias ('{b.name}'); this row has none",
                             "add bias=yes to the row (or `defaults conv: bias=yes`)")

    def dense_order(self, node: Node, w: np.ndarray) -> tuple[np.ndarray, str]:
        """A dense layer after a HxWxC map with H·W > 1: the model may flatten in H, W, C order
        (TensorFlow) while the IR flattens in C, H, W order; reorder the weight's columns."""
        x = node.in_shapes[0]
        if self.model.flatten == "chw" or x.h * x.w == 1:
            return w, ""
        if w.shape[1] != x.numel:
            return w, ""  # a shape error, reported by put()
        out = w.reshape(w.shape[0], x.h, x.w, x.c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
        return out, "columns reordered H,W,C -> C,H,W"

    def identity_bn(self, bn: Node, beta: np.ndarray | None, beta_name: str) -> None:
        """The BN after a conv whose model has it folded: γ = 1, β = 0 (or the folded bias when the
        conv row has none), mean = 0, var = 1 − eps, so that γ/√(var + eps) = 1."""
        eps = float(bn.attrs.get("eps", 1e-5))
        c = int(bn.params["weight"].shape[0])
        values = {
            "weight": np.ones(c, np.float32),
            "bias": np.zeros(c, np.float32) if beta is None else beta,
            "running_mean": np.zeros(c, np.float32),
            "running_var": np.full(c, 1.0 - eps, np.float32),
        }
        if beta is not None:
            self.put(bn, "bias", values["bias"], beta_name, (c,), "the folded bias (the conv row has no bias)")
        quiet = [local for local in BN_LOCALS if local in bn.params and not (local == "bias" and beta is not None)]
        for local in quiet:
            self.put(bn, local, values[local], "", None, "", record=False)
        what = {"weight": "γ=1", "bias": "β=0", "running_mean": "mean=0", "running_var": "var=1-eps"}
        self.rows.append(MapRow(_line(bn), f"{bn.name}.{{{','.join(quiet)}}}" if len(quiet) > 1 else
                                bn.param_key(quiet[0]), "(identity)", None, (c,),
                                "BN folded in the model: " + " ".join(what[q] for q in quiet)))

    def pair_bn(self, node: Node, op: ModelOp) -> None:
        eps = float(node.attrs.get("eps", 1e-5))
        if op.eps is not None and not np.isclose(op.eps, eps, rtol=1e-6, atol=0.0):
            raise self.error(node, f"batchnorm eps: the model's {op.short()} has eps={op.eps:g}, "
                                   f"the spec's {eps:g}",
                             f"write `defaults bn: eps={op.eps:g}` (or eps={op.eps:g} after bn on the row)")
        c = int(node.params["weight"].shape[0])
        defaults = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
        for local in BN_LOCALS:
            if local not in node.params:
                continue
            t = op.params.get(local)
            if t is None:  # Keras BatchNormalization(scale=False / center=False)
                self.put(node, local, np.full(c, defaults[local], np.float32), "(none)", None,
                         f"{defaults[local]:g}: not in the model")
            else:
                self.put(node, local, LAYOUTS[t.layout][1](t.array), t.name, tuple(t.array.shape))


def _fmt_pair(p) -> str:
    a, b = p
    return str(a) if a == b else f"{a}x{b}"


def match(graph: Graph, model: ModelGraph) -> ImportResult:
    """Map `model`'s tensors onto `graph`'s parameters (see the module doc). Raises ArchError."""
    return _Matcher(graph, model).run()


# ================================================================ the table


def render_table(result: ImportResult, width: int = 44) -> str:
    """The mapping, one line per IR parameter: spec line, IR param, model tensor, model shape -> IR shape."""
    def short(name: str) -> str:  # the middle goes: the start names the layer, the end the tensor
        if len(name) <= width:
            return name
        tail = (width - 1) // 2
        return name[: width - 1 - tail] + "…" + name[-tail:]

    head = ("line", "IR parameter", "model tensor", "model shape", "IR shape", "")
    body = [(str(r.line), r.ir_key, short(r.model_tensor), fmt_shape(r.model_shape) if r.model_shape else "-",
             fmt_shape(r.ir_shape), r.note) for r in result.rows]
    widths = [max(len(row[i]) for row in [head] + body) for i in range(5)]
    lines = []
    for row in [head] + body:
        cells = [row[0].rjust(widths[0])] + [row[i].ljust(widths[i]) for i in range(1, 5)]
        arrow = "->" if row is not head else "  "
        text = f"{cells[0]}  {cells[1]}  {cells[2]}  {cells[3]} {arrow} {cells[4]}  {row[5]}"
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"
