"""The matcher: the two sequences aligned, the first difference reported on its spec row, each pair
checked and its tensors converted to the IR layout (see the package doc, step 3)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from ...errors import ArchError
from ...ir import Graph, Node
from ...ops.base import Window, padding_for
from .diagnostics import (_distinct_rows, _Item, _ir_sig, _ir_words, _line, _loc, _model_sig, _model_words, _Unit,
                          _unit_words, _units, _words, filter_words)
from .kinds import BN_LOCALS, IR_KINDS, MAIN_KINDS, conv_kind
from .layouts import LAYOUTS, fmt_shape, ir_shape_of
from .model import ModelGraph, ModelOp
from .order import _G, canonical_order

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
    pairs: dict[str, "ModelOp"] = field(default_factory=dict)  # IR node name -> the model op it maps to



def _ir_nodes(graph: Graph) -> list[_G]:
    out = []
    for n in graph.nodes:
        kind = IR_KINDS.get(n.op.name)
        if kind is None:
            raise ArchError(f"importing weights into '{n.op.name}' rows is not supported yet", _loc(n))
        if kind in ("conv", "dwconv"):
            kind = conv_kind(int(n.attrs.groups), n.in_shapes[0].c)
        out.append(_G(kind, list(n.inputs), n.name, n))
    return out


def _model_nodes(model: ModelGraph) -> list[_G]:
    return [_G(op.kind, list(op.inputs), op.output, op) for op in model.ops]



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
        m_items = [_Item(n.kind, _model_sig(n.ref, n.kind), n) for n in m_seq]

        self.align(ir_items, m_items)
        for a, b in zip(ir_items, m_items):
            self.pair(a.node.ref, a.kind, b.node)
        from ...weights import check_weights

        weights = check_weights(self.weights, g, f"the weights imported from the {m.format} model")
        pairs = {a.node.ref.name: b.node.ref for a, b in zip(ir_items, m_items)}
        return ImportResult(weights, self.rows, m.format, self.folded, pairs)

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
        a = node.attrs
        if not isinstance(a, Window):
            return
        if op.stride is not None and tuple(op.stride) != tuple(a.stride):
            sh, sw = op.stride
            raise self.error(node, f"this row has stride {_fmt_pair(a.stride)}; "
                                   f"the model's {op.short()} has stride {_fmt_pair((sh, sw))}",
                             "a missing or extra row before this one, or a wrong /sN?")
        want = None
        if op.padding == "same" and g.extra_pads is None:
            x = node.in_shapes[0]
            want = padding_for("same_tf", tuple(a.kernel), tuple(a.stride), (x.h, x.w), None)
            how = "TensorFlow SAME"
        elif isinstance(op.padding, tuple):
            want = tuple(op.padding)
            if g.extra_pads is not None:
                want = tuple(a + b for a, b in zip(want, g.extra_pads))
            how = "explicit"
        if want is not None and tuple(want) != tuple(a.pads):
            hint = ("write pad=same_tf on the row (or `defaults conv: pad=same_tf`): TensorFlow's SAME pads the odd "
                    "pixel after" if how == "TensorFlow SAME" else
                    f"write pad= on the row to match (top, left, bottom, right) = {tuple(want)}")
            raise self.error(node, f"padding: the model's {op.short()} pads (top, left, bottom, right) = "
                                   f"{tuple(want)} ({how}), the spec's row {tuple(a.pads)}", hint)

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
        eps = float(bn.attrs.eps)
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
        eps = float(node.attrs.eps)
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
