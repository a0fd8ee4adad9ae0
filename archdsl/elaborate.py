"""AST -> IR: parameters, blocks, repeats, α and ρ, shape inference and the declared-shape checks.

Declared shapes (the `@ HxWxC` column and the input channels of filter shapes) are
assertions about the spec as written, so they are checked at the spec's default
parameter values. With overrides (`--set alpha=0.5`) the spec is first checked at
its defaults, then elaborated again with the overrides and no checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ops
from .errors import ArchError, Loc, did_you_mean
from .exprs import Scope, as_int, evaluate, evaluate_value, make_divisible, refers_to_input, round_half_up
from .ir import Graph, Node, RowRef, TensorShape
from .syntax import (AfterStmt, BlockDef, DefaultsStmt, InputStmt, PostOp, ResolutionStmt, Row, ShapeLit, Spec,
                     WidthStmt, Word)

STRUCTURAL = ("residual", "scale", "concat", "branch", "shortcut")
ROUNDINGS = ("floor", "nearest", "divisible")
INPUT = "input"
BLOCK_INPUT = "block.in"  # env key of the enclosing block's input shape (not a name a spec can write)


@dataclass
class WidthRule:
    """α and its rounding rule, printed by `stats`."""

    multiplier: float = 1.0
    rounding: str = "floor"
    divisor: int = 8
    declared: bool = False

    def __call__(self, channels: float) -> int:
        v = channels * self.multiplier
        if self.rounding == "floor":
            out = int(v + 1e-9)
        elif self.rounding == "nearest":
            out = round_half_up(v)
        else:
            out = make_divisible(v, self.divisor)
        return max(1, out)

    def describe(self) -> str:
        if not self.declared:
            return "none"
        rule = f"divisible({self.divisor})" if self.rounding == "divisible" else self.rounding
        return f"×{self.multiplier:g}, round {rule}"


@dataclass
class NameScope:
    """Hands out node names: conv1, dw1, conv2 … within a dotted prefix."""

    prefix: str
    taken: set
    counters: dict = field(default_factory=dict)

    def fresh(self, stem: str) -> str:
        while True:
            self.counters[stem] = self.counters.get(stem, 0) + 1
            name = f"{self.prefix}{stem}{self.counters[stem]}"
            if name not in self.taken:
                return name

    def child(self, name: str) -> "NameScope":
        return NameScope(name + ".", self.taken)


def network_defaults(spec: Spec) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for p in spec.params:
        if p.name in values:
            raise ArchError(f"parameter '{p.name}' is declared twice", p.loc)
        values[p.name] = evaluate(p.default, Scope(dict(values)))
    return values


def elaborate(spec: Spec, overrides: dict[str, Any] | None = None, check_defaults: bool = True) -> Graph:
    """Build the IR for `spec` with parameter `overrides` (name -> value).

    With overrides, the spec is first checked at its defaults; `check_defaults=False` skips that
    when the caller has already checked it (a sweep elaborates one spec many times)."""
    try:
        defaults = network_defaults(spec)
        values = dict(defaults)
        for name, value in (overrides or {}).items():
            if name not in defaults:
                guess = did_you_mean(name, list(defaults))
                raise ArchError(f"--set {name}: network '{spec.name}' has no parameter '{name}'", None,
                                f"did you mean '{guess}'?" if guess else
                                f"its parameters: {', '.join(defaults) or '(none)'}")
            values[name] = value
        if values != defaults:
            if check_defaults:
                _Elaborator(spec, defaults, checks=True).run()
            return _Elaborator(spec, values, checks=False).run()
        return _Elaborator(spec, values, checks=True).run()
    except ArchError as err:
        raise err.with_source(spec.filename, spec.source)
    except RecursionError:
        raise ArchError("blocks nest too deeply (does a block use itself?)", spec.loc).with_source(
            spec.filename, spec.source) from None


class _Elaborator:
    def __init__(self, spec: Spec, values: dict[str, Any], checks: bool):
        self.spec = spec
        self.values = values
        self.checks = checks
        self.nodes: list[Node] = []
        self.shapes: dict[str, TensorShape] = {}
        self.producer: dict[str, Node] = {}
        self.taken: set = set()
        self.width = WidthRule()
        self.rho: float | None = None
        self.input_stmt: InputStmt | None = None
        self.input_ready = False
        self.after: dict[str, tuple[PostOp, ...]] = {}
        self.defaults: dict[str, dict] = {}  # op name -> {option key: Option}
        self.blocks: dict[str, BlockDef] = {}

    # ------------------------------------------------------------ driver
    def run(self) -> Graph:
        top = NameScope("", self.taken)
        cur = self.stmts(self.spec.stmts, top, dict(self.values), None, first_copy=True)
        if cur is None:
            if not self.input_ready:
                self.start_input(self.spec.loc)
            raise ArchError(f"network '{self.spec.name}' has no layers", self.spec.loc,
                            "add rows such as: conv / s2  3x3x3x32")
        return Graph(name=self.spec.name, params=dict(self.values), input_name=INPUT,
                     input_shape=self.shapes[INPUT], nodes=self.nodes, output=cur,
                     width_rule=self.width.describe(), source_name=self.spec.filename)

    def scope(self, env: dict, cur: str | None) -> Scope:
        names = {k: v for k, v in env.items() if k != BLOCK_INPUT}
        return Scope(names, self.shapes.get(cur) if cur else None, self.width, block_in=env.get(BLOCK_INPUT))

    def stmts(self, stmts, names: NameScope, env: dict, cur: str | None, first_copy: bool) -> str | None:
        for st in stmts:
            if isinstance(st, Row):
                if cur is None:
                    cur = self.start_input(st.loc)
                cur = self.row(st, names, env, cur, first_copy)
            elif isinstance(st, InputStmt):
                if self.input_stmt is not None:
                    raise ArchError("the input is declared twice", st.loc)
                self.input_stmt = st
            elif isinstance(st, WidthStmt):
                self.set_width(st, env)
            elif isinstance(st, ResolutionStmt):
                if self.input_ready:
                    raise ArchError("`resolution` must come before the first row", st.loc)
                rho = evaluate_value(st.value, self.scope(env, None))
                if isinstance(rho, bool) or not isinstance(rho, (int, float)) or rho <= 0:
                    raise ArchError(f"resolution multiplier must be a positive number, got {rho!r}", st.value.loc)
                self.rho = float(rho)
            elif isinstance(st, AfterStmt):
                self.set_after(st)
            elif isinstance(st, DefaultsStmt):
                self.set_defaults(st)
            elif isinstance(st, BlockDef):
                if st.name.lower() in self.blocks or ops.lookup(st.name) or st.name.lower() in STRUCTURAL:
                    raise ArchError(f"block name '{st.name}' is already taken", st.loc)
                self.blocks[st.name.lower()] = st
        return cur

    # ------------------------------------------------------------ header statements
    def start_input(self, loc: Loc) -> str:
        st = self.input_stmt
        if st is None:
            raise ArchError("no input shape before the first row", loc, "add a line like: input 224x224x3")
        if len(st.shape.dims) != 3:
            raise ArchError("the input is HxWxC (three numbers)", st.shape.loc, "e.g. input 224x224x3")
        h, w, c = self.shape_values(st.shape, self.scope(self.values, None), "input")
        if self.rho is not None:
            h, w = round_half_up(h * self.rho), round_half_up(w * self.rho)
            if h < 1 or w < 1:
                raise ArchError(f"resolution multiplier {self.rho:g} leaves no pixels", st.loc)
        self.shapes[INPUT] = TensorShape(h, w, c)
        self.input_ready = True
        return INPUT

    def set_width(self, st: WidthStmt, env: dict) -> None:
        alpha = evaluate_value(st.value, self.scope(env, None))
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ArchError(f"width multiplier must be a positive number, got {alpha!r}", st.value.loc)
        if st.rounding not in ROUNDINGS:
            guess = did_you_mean(st.rounding, ROUNDINGS)
            raise ArchError(f"unknown rounding rule '{st.rounding}'", st.rounding_loc or st.loc,
                            f"did you mean '{guess}'?" if guess else "rules: floor, nearest, divisible(8)")
        if (st.rounding == "divisible") != (st.rounding_arg is not None):
            raise ArchError("only the divisible rule takes an argument: round divisible(8)", st.rounding_loc or st.loc)
        divisor = int(st.rounding_arg or 8)
        if divisor < 1:
            raise ArchError("divisible() needs a positive divisor", st.loc)
        self.width = WidthRule(float(alpha), st.rounding, divisor, declared=True)

    def set_after(self, st: AfterStmt) -> None:
        op = ops.lookup(st.op)
        if op is None:
            guess = did_you_mean(st.op, ops.op_names())
            raise ArchError(f"unknown layer type '{st.op}'", st.op_loc, f"did you mean '{guess}'?" if guess else None)
        for post in st.post:
            if post.name.lower() != "none" and ops.lookup(post.name) is None:
                guess = did_you_mean(post.name, ops.op_names())
                raise ArchError(f"unknown layer type '{post.name}'", post.loc,
                                f"did you mean '{guess}'?" if guess else None)
        self.after[op.name] = tuple(p for p in st.post if p.name.lower() != "none")

    def set_defaults(self, st: DefaultsStmt) -> None:
        op = ops.lookup(st.op)
        if op is None:
            guess = did_you_mean(st.op, ops.op_names())
            raise ArchError(f"unknown layer type '{st.op}'", st.op_loc, f"did you mean '{guess}'?" if guess else None)
        family = [o for o in ops.REGISTRY.values() if o.name == op.name or o.name.startswith(op.name + " ")]
        known = sorted({k for o in family for k in o.options})
        for opt in st.options:
            if opt.key not in known:
                guess = did_you_mean(opt.key, known)
                raise ArchError(f"'{op.name}' has no option '{opt.key}'", opt.loc,
                                f"did you mean '{guess}='?" if guess else
                                f"options: {', '.join(known) or '(none)'}")
        entry = dict(self.defaults.get(op.name, {}))
        entry.update({opt.key: opt for opt in st.options})
        self.defaults[op.name] = entry

    def option_defaults(self, op) -> dict:
        """Options from `defaults` lines that apply to `op`: `defaults conv:` covers conv and conv dw;
        a line naming the op itself wins."""
        merged = dict(self.defaults.get(op.name.split()[0], {})) if op.name.split()[0] != op.name else {}
        merged.update(self.defaults.get(op.name, {}))
        return {k: v for k, v in merged.items() if k in op.options}

    # ------------------------------------------------------------ rows
    def row(self, row: Row, names: NameScope, env: dict, cur: str, first_copy: bool) -> str:
        sc = self.scope(env, cur)
        cond = row.option("if")
        if cond is not None and not evaluate_value(cond.value, sc):
            return cur
        count_opt = row.option("n")
        count = 1
        if count_opt is not None:
            count = as_int(evaluate_value(count_opt.value, sc), count_opt.value, "n=")
            if count < 0:
                raise ArchError(f"n= must not be negative, got {count}", count_opt.loc)
        if row.repeat is not None:
            reps = as_int(evaluate(row.repeat, sc), row.repeat, "repeat count")
            for _ in range(count):
                for i in range(reps):
                    cur = self.stmts(row.body, names, env, cur, first_copy and i == 0)
            return cur
        for i in range(count):
            cur = self.single(row, names, env, cur, first_copy and i == 0)
        return cur

    def single(self, row: Row, names: NameScope, env: dict, cur: str, first_copy: bool) -> str:
        head = row.head
        if row.body is not None or head in STRUCTURAL:
            return self.structural(row, names, env, cur, first_copy)
        if head in self.blocks:
            return self.use_block(row, self.blocks[head], names, env, cur, first_copy)
        op, flags = self.resolve_op(row)
        sc = self.scope(env, cur)
        self.check_declared_input(row, sc, cur, first_copy)
        # Declared shapes describe a repeated row's first copy (the papers' n column).
        args = ops.RowArgs(op_loc=row.words_loc, in_shapes=(self.shapes[cur],),
                           at_defaults=self.checks and first_copy, scale_width=self.width, dw=row.dw)
        if row.stride is not None:
            if not op.takes_stride:
                raise ArchError(f"'{op.name}' has no stride", row.stride.loc,
                                "only conv, conv dw and pooling rows take / sN")
            stride = as_int(evaluate(row.stride, sc), row.stride, "stride")
            args.stride, args.stride_loc = (stride if first_copy else 1), row.stride.loc
        if row.filter is not None:
            args.filter = self.shape_values(row.filter, sc, "filter dimension")
            args.filter_locs = tuple(d.loc for d in row.filter.dims)
            args.filter_loc = row.filter.loc
            args.filter_from_input = tuple(refers_to_input(d) for d in row.filter.dims)
        elif row.dw:
            raise ArchError("'dw' without a filter shape", row.words_loc)
        for opt in (*self.option_defaults(op).values(), *row.options):
            if opt.key not in ops.base.ROW_OPTIONS:
                args.options[opt.key] = (evaluate_value(opt.value, sc), opt.loc)
        args.flags = {f.name: f.loc for f in row.flags}
        args.flags.update({w: row.words_loc for w in flags})
        attrs = op.configure(args)
        group = self.row_name(row, names, op.short)
        post = self.post_ops(row, op, sc)
        ref = RowRef(group, row.loc.line, row.loc.col, row.text)
        if not post:
            return self.add_node(group, op, attrs, (cur,), ref)
        out = self.add_node(f"{group}.{op.short}", op, attrs, (cur,), ref)
        return self.apply_post(post, group, out, ref, sc)

    def resolve_op(self, row: Row):
        words = [w.lower() for w in row.words]
        for k in range(len(words), 0, -1):
            op = ops.lookup(" ".join(words[:k]))
            if op is not None:
                return op, list(row.words[k:])
        name = " ".join(row.words)
        candidates = ops.op_names() + list(ops.ALIASES) + list(self.blocks) + list(STRUCTURAL)
        guess = did_you_mean(name, candidates)
        if guess is None and len(words) > 1:
            guess = did_you_mean(words[0], candidates)
        raise ArchError(f"unknown layer type '{name}'", row.words_loc,
                        f"did you mean '{guess}'?" if guess else f"layer types: {', '.join(ops.op_names())}")

    def row_name(self, row: Row, names: NameScope, stem: str) -> str:
        opt = row.option("name")
        if opt is None:
            name = names.fresh(stem)
        else:
            given = opt.value.parts[0]
            if len(opt.value.parts) != 1 or not isinstance(given, Word):
                raise ArchError("name= takes a plain name", opt.loc)
            name = names.prefix + given.name
            if name == INPUT:
                raise ArchError(f"'{INPUT}' names the network's input; choose another name", opt.loc)
            if name in self.taken or any(t.startswith(name + ".") for t in self.taken):
                raise ArchError(f"name '{given.name}' is already used", opt.loc)
        self.taken.add(name)
        return name

    def post_ops(self, row: Row, op, sc: Scope) -> list[tuple]:
        """The ops that follow this row: its after= option, else the spec's `after <op>:` line."""
        opt = row.option("after")
        if opt is not None:
            value = evaluate_value(opt.value, sc)
            items = value if isinstance(value, list) else [value]
            out = []
            for item in items:
                if not isinstance(item, str):
                    raise ArchError(f"after= takes op names joined by +, got {item!r}", opt.loc)
                if item.lower() == "none":
                    continue
                post_op = ops.lookup(item)
                if post_op is None:
                    guess = did_you_mean(item, ops.op_names() + list(ops.ALIASES))
                    raise ArchError(f"unknown layer type '{item}' in after=", opt.loc,
                                    f"did you mean '{guess}'?" if guess else None)
                out.append((post_op, self.post_options_for(post_op), opt.loc))
            return out
        entry = self.after.get(op.name)
        if entry is None:
            entry = self.after.get(op.name.split()[0], ())
        return [(ops.lookup(p.name), p.options, p.loc) for p in entry]

    def post_options_for(self, op) -> tuple:
        """Options given to `op` in any `after` line (so after=bn+relu keeps a spec-wide bn eps=)."""
        for entry in self.after.values():
            for p in entry:
                if ops.lookup(p.name) is op and p.options:
                    return p.options
        return ()

    def apply_post(self, post: list[tuple], group: str, cur: str, ref: RowRef, sc: Scope) -> str:
        used: dict[str, int] = {}
        for post_op, options, loc in post:
            args = ops.RowArgs(op_loc=loc, in_shapes=(self.shapes[cur],), at_defaults=self.checks)
            for opt in (*self.option_defaults(post_op).values(), *options):
                args.options[opt.key] = (evaluate_value(opt.value, sc), opt.loc)
            attrs = post_op.configure(args)
            used[post_op.short] = used.get(post_op.short, 0) + 1
            suffix = post_op.short if used[post_op.short] == 1 else f"{post_op.short}{used[post_op.short]}"
            cur = self.add_node(f"{group}.{suffix}", post_op, attrs, (cur,), ref)
        return cur

    def add_node(self, name: str, op, attrs: dict, inputs: tuple, ref: RowRef) -> str:
        ins = tuple(self.shapes[t] for t in inputs)
        out = op.out_shape(attrs, ins)
        node = Node(name=name, op=op, attrs=attrs, inputs=inputs, in_shapes=ins, out_shape=out,
                    params=op.param_shapes(attrs, ins), row=ref)
        self.nodes.append(node)
        self.shapes[name] = out
        self.producer[name] = node
        self.taken.add(name)
        return name

    # ------------------------------------------------------------ declared shapes
    def shape_values(self, shape: ShapeLit, sc: Scope, what: str) -> tuple[int, ...]:
        values = []
        for d in shape.dims:
            v = as_int(evaluate(d, sc), d, what)
            if v <= 0:
                raise ArchError(f"{what} must be positive, got {v}", d.loc)
            values.append(v)
        return tuple(values)

    def check_declared_input(self, row: Row, sc: Scope, cur: str, first_copy: bool = True) -> None:
        if row.declared is None or not first_copy:  # the printed input size is the first copy's
            return
        if len(row.declared.dims) != 3:
            raise ArchError("an input size is HxWxC (three numbers)", row.declared.loc)
        declared = TensorShape(*self.shape_values(row.declared, sc, "input size"))
        actual = self.shapes[cur]
        if not self.checks or declared == actual:
            return
        hint, culprit = self.explain(cur, declared, actual)
        notes = [(culprit, "the row that changed the shape")] if culprit is not None else []
        raise ArchError(f"declared input {declared}, inferred {actual}", row.declared.loc, hint, notes)

    def explain(self, cur: str, declared: TensorShape, actual: TensorShape) -> tuple[str | None, Loc | None]:
        """Name the row that made the inferred shape differ from the declared one (and where it is)."""
        spatial = (declared.h, declared.w) != (actual.h, actual.w)
        t = cur
        while t in self.producer:
            node = self.producer[t]
            x = node.in_shapes[0]
            if spatial and (x.h, x.w) != (node.out_shape.h, node.out_shape.w):
                stride = node.attrs.get("stride", (1, 1))[0]
                why = f"stride {stride}" if stride > 1 else "the row"
                return (f"{why} on line {node.row.line} turns {x.h}x{x.w} into "
                        f"{node.out_shape.h}x{node.out_shape.w}", _stride_loc(node.row))
            if not spatial and x.c != node.out_shape.c:
                return (f"line {node.row.line} outputs {node.out_shape.c} channels",
                        Loc(node.row.line, node.row.col, len(node.row.text.split("#")[0].rstrip())))
            t = node.inputs[0]
        return None, None

    # ------------------------------------------------------------ blocks and combinators
    def use_block(self, row: Row, block: BlockDef, names: NameScope, env: dict, cur: str,
                  first_copy: bool) -> str:
        sc = self.scope(env, cur)
        self.check_declared_input(row, sc, cur, first_copy)
        params = {p.name: p for p in block.params}
        bound: dict[str, Any] = {}
        for opt in row.options:
            if opt.key in ops.base.ROW_OPTIONS:
                continue
            if opt.key not in params:
                guess = did_you_mean(opt.key, list(params))
                raise ArchError(f"block '{block.name}' has no parameter '{opt.key}'", opt.loc,
                                f"did you mean '{guess}='?" if guess else
                                f"its parameters: {', '.join(params) or '(none)'}")
            bound[opt.key] = evaluate_value(opt.value, sc)
        if row.stride is not None:
            if "s" not in params:
                raise ArchError(f"block '{block.name}' takes no stride (it has no parameter s)", row.stride.loc)
            if "s" in bound:
                raise ArchError("the stride is given twice (/ sN and s=)", row.stride.loc)
            bound["s"] = as_int(evaluate(row.stride, sc), row.stride, "stride")
        if row.filter is not None or row.flags:
            loc = row.filter.loc if row.filter is not None else row.flags[0].loc
            raise ArchError(f"a block row takes parameters as key=value, e.g. {block.name} "
                            + " ".join(f"{p}=…" for p in params), loc)
        for p in block.params:
            if p.name not in bound:
                if p.default is None:
                    raise ArchError(f"block '{block.name}' needs {p.name}=", row.words_loc,
                                    "its parameters: " + ", ".join(params))
                bound[p.name] = evaluate(p.default, sc)
        if not first_copy and "s" in bound:
            bound["s"] = 1  # a repeated row's stride applies to its first copy only
        inner_env = dict(self.values)
        inner_env.update(bound)
        inner_env[BLOCK_INPUT] = self.shapes[cur]
        group = self.row_name(row, names, block.name)
        out = self.stmts(block.body, names.child(group), inner_env, cur, first_copy=True)
        ref = RowRef(group, row.loc.line, row.loc.col, row.text)
        post = self.post_ops(row, _NO_OP, sc) if row.option("after") else []
        return self.apply_post(post, group, out, ref, sc) if post else out

    def structural(self, row: Row, names: NameScope, env: dict, cur: str, first_copy: bool) -> str:
        kind = row.head
        if kind not in STRUCTURAL or row.body is None:
            if row.body is not None:
                guess = did_you_mean(kind, list(STRUCTURAL))
                raise ArchError(f"'{kind}' cannot take a {{ }} body", row.words_loc,
                                f"did you mean '{guess}'?" if guess else
                                "bodies belong to Nx { }, residual, scale, concat and branch")
            raise ArchError(f"'{kind}' needs a body: {kind} {{ … }}", row.words_loc)
        if kind in ("branch", "shortcut"):
            parent = "concat" if kind == "branch" else "residual"
            raise ArchError(f"'{kind}' belongs inside '{parent} {{ }}'", row.words_loc)
        sc = self.scope(env, cur)
        for opt in row.options:
            if opt.key not in ops.base.ROW_OPTIONS | ({"shortcut"} if kind == "residual" else set()):
                raise ArchError(f"'{kind}' has no option '{opt.key}'", opt.loc)
        group = self.row_name(row, names, kind)
        inner = names.child(group)
        ref = RowRef(group, row.loc.line, row.loc.col, row.text)
        if kind == "residual":
            out = self.residual(row, inner, env, cur, first_copy, group, ref)
        elif kind == "scale":
            gate = self.stmts(row.body, inner, env, cur, first_copy)
            out = self.combine("mul", (cur, gate), group, ref, row)
        else:
            branches = [st for st in row.body if isinstance(st, Row)]
            if not branches or any(st.head != "branch" or st.body is None for st in branches):
                raise ArchError("a concat body holds only `branch { … }` rows", row.words_loc)
            outs = []
            for st in branches:
                bsc = self.scope(env, cur)
                cond = st.option("if")
                if cond is not None and not evaluate_value(cond.value, bsc):
                    continue
                bname = self.row_name(st, inner, "branch")
                outs.append(self.stmts(st.body, inner.child(bname), env, cur, first_copy))
            out = self.combine("concat", tuple(outs), group, ref, row) if len(outs) > 1 else outs[0]
        post = self.post_ops(row, _NO_OP, sc) if row.option("after") else []
        return self.apply_post(post, group, out, ref, sc) if post else out

    def residual(self, row: Row, inner: NameScope, env: dict, cur: str, first_copy: bool,
                 group: str, ref: RowRef) -> str:
        body = [st for st in row.body if not (isinstance(st, Row) and st.head == "shortcut")]
        shortcuts = [st for st in row.body if isinstance(st, Row) and st.head == "shortcut"]
        if len(shortcuts) > 1:
            raise ArchError("a residual has at most one shortcut", shortcuts[1].words_loc)
        mode = "always"
        opt = row.option("shortcut")
        if opt is not None:
            mode = evaluate_value(opt.value, self.scope(env, cur))
            if mode not in ("always", "auto"):
                raise ArchError("shortcut= takes always or auto", opt.loc,
                                "auto adds x + f(x) only where f keeps the shape (MobileNetV2's rule)")
        out = self.stmts(tuple(body), inner, env, cur, first_copy)
        skip = cur
        if shortcuts:
            if shortcuts[0].body is None:
                raise ArchError("shortcut needs a body: shortcut { … }", shortcuts[0].words_loc)
            skip = self.stmts(shortcuts[0].body, inner.child(inner.prefix + "shortcut"), env, cur, first_copy)
        if mode == "auto" and self.shapes[skip] != self.shapes[out]:
            return out
        return self.combine("add", (out, skip), group, ref, row)

    def combine(self, op_name: str, inputs: tuple, group: str, ref: RowRef, row: Row) -> str:
        op = ops.lookup(op_name)
        args = ops.RowArgs(op_loc=row.words_loc, in_shapes=tuple(self.shapes[t] for t in inputs),
                           at_defaults=self.checks)
        attrs = op.configure(args)
        return self.add_node(f"{group}.{op.short}", op, attrs, inputs, ref)


def _stride_loc(row: RowRef) -> Loc:
    """Where the `/ sN` of a row is (or the whole row when it has none)."""
    import re

    m = re.search(r"/[ \t]*(s\S+)", row.text)
    if m is None:
        return Loc(row.line, row.col, len(row.text.split("#")[0].rstrip()))
    return Loc(row.line, row.col + m.start(1), len(m.group(1)))


class _NoOp:
    name = ""


_NO_OP = _NoOp()
