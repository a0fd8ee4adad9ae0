"""AST -> IR: parameters, blocks, repeats, α and ρ, shape inference and the declared-shape checks.

Declared shapes (the `@ HxWxC` column and the input channels of filter shapes) are
assertions about the spec as written, so they are checked at the spec's default
parameter values. With overrides (`--set alpha=0.5`) the spec is first checked at
its defaults, then elaborated again with the overrides and no checks.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import ops
from .errors import ArchError, Diagnostic, Loc, did_you_mean
from .exprs import Scope, as_int, evaluate, evaluate_value, make_divisible, refers_to_input, round_half_up
from .ir import Graph, Node, RowRef, TensorShape
from .ops.base import Attrs, Window
from .limits import MAX_ERRORS, MAX_LAYERS, MAX_NESTING, MAX_SIZE
from .syntax import (AfterStmt, BlockDef, DefaultsStmt, InputStmt, Invalid, PostOp, ResolutionStmt, Row, ShapeLit,
                     Spec, WidthStmt, Word)


@dataclass(frozen=True)
class Combinator:
    """A row with a body that joins tensors: `residual { }`, `scale { }`, `concat { }`."""

    build: Any  # _Elaborator method (row, inner names, env, cur, first_copy, group, ref) -> output
    joins: str  # the op that joins the body's output(s)
    doc: str
    options: frozenset = frozenset()  # options beyond the ones every row takes


PARTS = {"branch": "concat", "shortcut": "residual"}  # bodies that belong inside a combinator
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
    except RecursionError:  # the nesting limits keep well inside Python's stack; this is a last resort
        raise ArchError("the spec nests too deeply to elaborate", spec.loc,
                        f"bodies may nest {MAX_NESTING} levels deep").with_source(spec.filename, spec.source) from None


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
        self.open_bodies: list[Row] = []  # the rows whose bodies are being elaborated, outermost first
        self.open_blocks: list[tuple[BlockDef, Row, str]] = []  # blocks being expanded: the using row, a note
        self.copy = (0, 1)  # which copy of an n= row is being elaborated, of how many
        self.errors: list[Diagnostic] = []
        self.reported: set = set()
        self.in_step = True  # False after an error, until a declared input size resyncs the shapes

    # ------------------------------------------------------------ driver
    def run(self) -> Graph:
        top = NameScope("", self.taken)
        try:
            cur = self.stmts(self.spec.stmts, top, dict(self.values), None, first_copy=True)
        except _Stop:
            cur = None
        if self.errors:
            if len(self.errors) >= MAX_ERRORS:
                self.errors.append(Diagnostic(f"stopping after {MAX_ERRORS} errors"))
            raise ArchError.many(self.errors)
        if cur is None:
            if not self.input_ready:
                self.start_input(self.spec.loc)
            raise ArchError(f"network '{self.spec.name}' has no layers", self.spec.loc,
                            "add rows such as: conv / s2  3x3x3x32")
        return Graph(name=self.spec.name, params=dict(self.values), input_name=INPUT,
                     input_shape=self.shapes[INPUT], nodes=self.nodes, output=cur,
                     width_rule=self.width.describe(), source_name=self.spec.filename)

    @contextmanager
    def body_of(self, row: Row):
        """Elaborate `row`'s body (a repeat, combinator or block), at most MAX_NESTING deep."""
        if len(self.open_bodies) >= MAX_NESTING:
            raise ArchError(f"bodies nest more than {MAX_NESTING} levels deep here", row.words_loc,
                            "repeats, residual/scale/concat bodies and blocks used inside blocks each count a level")
        self.open_bodies.append(row)
        try:
            yield
        finally:
            self.open_bodies.pop()

    def copies(self, count: int, row: Row, loc: Loc, what: str):
        """range(count) for a repeat, refused as soon as the copies made so far show that all of them
        would take the network past MAX_LAYERS (each copy makes as many layers as the first)."""
        start = len(self.nodes)
        for i in range(count):
            if i == 1:
                per_copy = len(self.nodes) - start
                if start + per_copy * count > MAX_LAYERS:
                    raise ArchError(f"{what} makes {per_copy * count:,} layers, more than the limit of "
                                    f"{MAX_LAYERS:,}", loc, "a network has at most "
                                    f"{MAX_LAYERS:,} layers; is the count a typo?")
            yield i

    def count(self, value, expr, what: str) -> int:
        """A repeat count: a whole number from 0 to MAX_LAYERS."""
        count = as_int(value, expr, what)
        if count < 0:
            raise ArchError(f"{what} must not be negative, got {count}", expr.loc)
        if count > MAX_LAYERS:
            raise ArchError(f"{what} {count:,} is more than the limit of {MAX_LAYERS:,} layers", expr.loc,
                            "is the count a typo?")
        return count

    def scope(self, env: dict, cur: str | None) -> Scope:
        names = {k: v for k, v in env.items() if k != BLOCK_INPUT}
        return Scope(names, self.shapes.get(cur) if cur else None, self.width, block_in=env.get(BLOCK_INPUT))

    def stmts(self, stmts, names: NameScope, env: dict, cur: str | None, first_copy: bool) -> str | None:
        """Elaborate statements in order. A statement that fails is reported and skipped (its output
        is taken to be its input), so one run reports every independent error (see report())."""
        for st in stmts:
            if isinstance(st, Row) and cur is None:
                try:
                    cur = self.start_input(st.loc)
                except ArchError as err:  # nothing after it can be checked
                    self.report(err)
                    raise _Stop from None
            try:
                if isinstance(st, Row):
                    cur = self.row(st, names, env, cur, first_copy)
                else:
                    _STATEMENTS[type(st)](self, st, env)
            except _Skipped:
                pass
            except ArchError as err:
                self.report(err)
        return cur

    def report(self, err: ArchError) -> None:
        """Record a diagnostic (once, with a note at each block use it is inside) and carry on, until
        MAX_ERRORS. After an error the shapes that follow may be wrong, so shape errors are held back
        (see shape_checks) until a row's declared input size (@ HxWxC) brings them back in step."""
        for diag in err.diagnostics:
            key = (diag.loc, diag.message)
            if key in self.reported:
                continue
            self.reported.add(key)
            diag.notes.extend((row.words_loc, note) for _, row, note in reversed(self.open_blocks))
            self.errors.append(diag)
        self.in_step = False
        if len(self.errors) >= MAX_ERRORS:
            raise _Stop

    @contextmanager
    def shape_checks(self):
        """Shape errors raised here are reported only while the inferred shapes are in step."""
        try:
            yield
        except ArchError:
            if not self.in_step:
                raise _Skipped from None
            raise

    def declare_input(self, st: InputStmt, env: dict) -> None:
        if self.input_stmt is not None:
            raise ArchError("the input is declared twice", st.loc)
        self.input_stmt = st

    def set_resolution(self, st: ResolutionStmt, env: dict) -> None:
        if self.input_ready:
            raise ArchError("`resolution` must come before the first row", st.loc)
        rho = evaluate_value(st.value, self.scope(env, None))
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or rho <= 0:
            raise ArchError(f"resolution multiplier must be a positive number, got {rho!r}", st.value.loc)
        self.rho = float(rho)

    def define_block(self, st: BlockDef, env: dict) -> None:
        self.check_block_name(st)
        self.blocks[st.name.lower()] = st

    def invalid(self, st: Invalid, env: dict) -> None:
        raise st.error

    def check_block_name(self, st: BlockDef) -> None:
        key = st.name.lower()
        op = ops.lookup(key)
        if key in self.blocks:
            raise ArchError(f"block name '{st.name}' is already taken by another block", st.name_loc, None,
                            [(self.blocks[key].name_loc, f"block '{self.blocks[key].name}' is defined here")])
        if op is not None:
            what = f"the op '{op.name}'" if op.name == key else f"'{key}', another name for the op '{op.name}'"
            raise ArchError(f"block name '{st.name}' is already taken by {what}", st.name_loc,
                            "choose another name: a row naming it would be ambiguous")
        if key in STRUCTURAL:
            raise ArchError(f"block name '{st.name}' is already taken by the language's '{key} {{ }}'", st.name_loc,
                            "choose another name")

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
            if max(h, w) > MAX_SIZE:
                raise ArchError(f"resolution multiplier {self.rho:g} makes the input {h}x{w}, larger than the "
                                f"limit of {MAX_SIZE:,}", st.loc)
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
        divisor = 8 if st.rounding_arg is None else st.rounding_arg
        if divisor != int(divisor) or divisor < 1:
            raise ArchError(f"divisible() needs a whole divisor of at least 1, got {divisor:g}",
                            st.rounding_loc or st.loc, "e.g. round divisible(8)")
        divisor = int(divisor)
        self.width = WidthRule(float(alpha), st.rounding, divisor, declared=True)

    def set_after(self, st: AfterStmt, env: dict | None = None) -> None:
        op = self.known_op(st.op, st.op_loc)
        for post in st.post:
            if post.name.lower() != "none":
                self.following_op(post.name, post.loc)
        self.after[op.name] = tuple(p for p in st.post if p.name.lower() != "none")

    def known_op(self, name: str, loc: Loc, where: str = "", aliases: bool = False):
        """The op called `name`, or the diagnostic for a name that is not one."""
        op = ops.lookup(name)
        if op is not None:
            return op
        key = name.lower()
        if key in self.blocks:
            block = self.blocks[key]
            raise ArchError(f"'{name}' is a block, not an op{where}", loc,
                            f"a block is used as a row of its own: {block.name}"
                            + "".join(f" {p.name}=…" for p in block.params),
                            [(self.blocks[key].name_loc, f"block '{self.blocks[key].name}' is defined here")])
        if key in SYNONYMS and ops.lookup(SYNONYMS[key]) is not None:
            raise ArchError(f"unknown layer type '{name}'{where}", loc,
                            f"did you mean '{SYNONYMS[key]}'? it is archdsl's name for {name}")
        if key in OTHER_FUNCTIONS:  # a real function archdsl lacks: a near name would be another one
            raise ArchError(f"'{name}' ({OTHER_FUNCTIONS[key]}) is not an archdsl op{where}", loc,
                            f"archdsl's layer types: {', '.join(_row_op_names())}")
        guess = did_you_mean(name, ops.op_names() + (list(ops.ALIASES) if aliases else []))
        raise ArchError(f"unknown layer type '{name}'{where}", loc, f"did you mean '{guess}'?" if guess else None)

    def following_op(self, name: str, loc: Loc, where: str = ""):
        """An op that follows a layer (`after=`, an `after` line): one that takes one input."""
        op = self.known_op(name, loc, where, aliases=bool(where))
        if op.arity != 1:
            raise ArchError(f"'{op.name}' joins tensors, so it cannot follow a layer{where}", loc,
                            _joiner_hint(op))
        return op

    def set_defaults(self, st: DefaultsStmt, env: dict | None = None) -> None:
        op = self.known_op(st.op, st.op_loc)
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
            count = self.count(evaluate_value(count_opt.value, sc), count_opt.value, "n=")
        if row.repeat is not None:
            reps = self.count(evaluate(row.repeat, sc), row.repeat, "repeat count")
            with self.body_of(row):
                for i in self.copies(count * reps, row, row.repeat.loc, f"{reps}x"):
                    cur = self.stmts(row.body, names, env, cur, first_copy and i % reps == 0)
            return cur
        for i in self.copies(count, row, count_opt.loc if count_opt else row.words_loc, f"n={count}"):
            self.copy = (i, count)
            cur = self.single(row, names, env, cur, first_copy and i == 0)
        return cur

    def single(self, row: Row, names: NameScope, env: dict, cur: str, first_copy: bool) -> str:
        head = row.head
        if row.body is not None or head in STRUCTURAL:
            return self.structural(row, names, env, cur, first_copy)
        if head in self.blocks:
            return self.use_block(row, self.blocks[head], names, env, cur, first_copy)
        op, flags = self.resolve_op(row)
        cur = self.check_declared_input(row, self.scope(env, cur), cur, first_copy)
        sc = self.scope(env, cur)
        # Declared shapes describe a repeated row's first copy (the papers' n column).
        args = ops.RowArgs(op_loc=row.words_loc, in_shapes=(self.shapes[cur],),
                           at_defaults=self.checks and first_copy, scale_width=self.width, dw=row.dw)
        if row.stride is not None:
            if not op.takes_stride:
                raise ArchError(f"'{op.name}' has no stride", row.stride.loc,
                                "only conv, conv dw and pooling rows take / sN")
            stride = self.stride(row, sc)
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
        op.check_options(args)  # every row op, whatever its configure does; never a shape error
        with self.shape_checks():
            attrs = op.configure(args)
        group = self.row_name(row, names, op.short)
        post = self.post_ops(row, op, sc)
        ref = RowRef(group, row.loc.line, row.loc.col, row.text)
        if not post:
            return self.add_node(group, op, attrs, (cur,), ref)
        out = self.add_node(f"{group}.{op.short}", op, attrs, (cur,), ref)
        return self.apply_post(post, group, out, ref, sc)

    def stride(self, row: Row, sc: Scope) -> int:
        stride = as_int(evaluate(row.stride, sc), row.stride, "stride")
        if stride > MAX_SIZE:
            raise ArchError(f"stride {stride:,} is larger than the limit of {MAX_SIZE:,}", row.stride.loc)
        return stride

    def resolve_op(self, row: Row):
        words = [w.lower() for w in row.words]
        for k in range(len(words), 0, -1):
            op = ops.lookup(" ".join(words[:k]))
            if op is not None:
                if op.arity != 1:
                    raise ArchError(f"'{op.name}' joins tensors, so it is not a row of its own", row.words_loc,
                                    _joiner_hint(op))
                return op, list(row.words[k:])
        name = " ".join(row.words)
        if name.lower() in OTHER_FUNCTIONS or name.lower() in SYNONYMS:
            self.known_op(name, row.words_loc)
        candidates = _row_op_names() + list(ops.ALIASES) + list(self.blocks) + list(STRUCTURAL)
        guess = did_you_mean(name, candidates)
        if guess is None and len(words) > 1:
            guess = did_you_mean(words[0], candidates)
        raise ArchError(f"unknown layer type '{name}'", row.words_loc,
                        f"did you mean '{guess}'?" if guess else f"layer types: {', '.join(_row_op_names())}")

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
                post_op = self.following_op(item, opt.loc, " in after=")
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
            post_op.check_options(args)
            with self.shape_checks():
                attrs = post_op.configure(args)
            used[post_op.short] = used.get(post_op.short, 0) + 1
            suffix = post_op.short if used[post_op.short] == 1 else f"{post_op.short}{used[post_op.short]}"
            cur = self.add_node(f"{group}.{suffix}", post_op, attrs, (cur,), ref)
        return cur

    def add_node(self, name: str, op, attrs: Attrs, inputs: tuple, ref: RowRef) -> str:
        ins = tuple(self.shapes[t] for t in inputs)
        out = op.out_shape(attrs, ins)
        row_loc = Loc(ref.line, ref.col, len(ref.text.split("#")[0].rstrip()))
        if max(out.h, out.w, out.c) > MAX_SIZE:
            raise ArchError(f"this row outputs {out}, larger than the limit of {MAX_SIZE:,} per dimension",
                            row_loc, "is a count or a multiplier a typo?")
        if len(self.nodes) >= MAX_LAYERS:
            raise ArchError(f"the network has more than {MAX_LAYERS:,} layers", row_loc,
                            "is a repeat count a typo?")
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
            if v > MAX_SIZE:
                raise ArchError(f"{what} {v:,} is larger than the limit of {MAX_SIZE:,}", d.loc)
            values.append(v)
        return tuple(values)

    def check_declared_input(self, row: Row, sc: Scope, cur: str, first_copy: bool = True) -> str:
        """Check the row's `@ HxWxC` against the inferred input. A mismatch is reported, and the rows
        after it are checked from the declared size (the table's view), as they are after any error:
        that is what lets one run report each typo of a pasted table. Returns the row's input."""
        if row.declared is None or not first_copy or not self.checks:  # the printed size is the first copy's
            return cur
        if len(row.declared.dims) != 3:
            raise ArchError("an input size is HxWxC (three numbers)", row.declared.loc)
        declared = TensorShape(*self.shape_values(row.declared, sc, "input size"))
        actual = self.shapes[cur]
        if declared == actual:
            self.in_step = True
            return cur
        if self.in_step:
            hint, culprit = self.explain(cur, declared, actual)
            notes = [(culprit, "the row that changed the shape")] if culprit is not None else []
            self.report(ArchError(f"declared input {declared}, inferred {actual}", row.declared.loc, hint, notes))
        resync = f"{cur}@{row.loc.line}:{row.loc.col}"  # a stand-in tensor of the declared shape
        self.shapes[resync] = declared
        self.in_step = True
        return resync

    def explain(self, cur: str, declared: TensorShape, actual: TensorShape) -> tuple[str | None, Loc | None]:
        """Name the row that made the inferred shape differ from the declared one (and where it is)."""
        spatial = (declared.h, declared.w) != (actual.h, actual.w)
        t = cur
        while t in self.producer:
            node = self.producer[t]
            x = node.in_shapes[0]
            if spatial and (x.h, x.w) != (node.out_shape.h, node.out_shape.w):
                stride = node.attrs.stride[0] if isinstance(node.attrs, Window) else 1
                why = f"stride {stride}" if stride > 1 else "the row"
                return (f"{why} on line {node.row.line} turns {x.h}x{x.w} into "
                        f"{node.out_shape.h}x{node.out_shape.w}" + _window_arithmetic(node), _stride_loc(node.row))
            if not spatial and x.c != node.out_shape.c:
                return (f"line {node.row.line} outputs {node.out_shape.c} channels",
                        Loc(node.row.line, node.row.col, len(node.row.text.split("#")[0].rstrip())))
            t = node.inputs[0]
        return None, None

    # ------------------------------------------------------------ blocks and combinators
    def use_block(self, row: Row, block: BlockDef, names: NameScope, env: dict, cur: str,
                  first_copy: bool) -> str:
        copy, copies = self.copy
        cycle = [i for i, (b, _, _) in enumerate(self.open_blocks) if b is block]
        if cycle:
            chain = self.open_blocks[cycle[0]:]
            through = " -> ".join(b.name for b, _, _ in chain[1:])
            raise ArchError(f"block '{block.name}' uses itself" + (f" (through {through})" if through else ""),
                            row.words_loc, "a block cannot contain itself: its expansion would never end",
                            [(block.name_loc, f"block '{block.name}' is defined here")]
                            + [(r.words_loc, f"'{b.name}' is used here") for b, r, _ in chain[1:]])
        cur = self.check_declared_input(row, self.scope(env, cur), cur, first_copy)
        sc = self.scope(env, cur)
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
            bound["s"] = self.stride(row, sc)
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
        given = " ".join(f"{k}={_shown(v)}" for k, v in bound.items())
        which = f" (copy {copy + 1} of n={copies})" if copies > 1 else ""
        self.open_blocks.append((block, row, f"in block '{block.name}' used here{which} with "
                                             f"{given or 'its defaults'}"))
        try:
            with self.body_of(row):
                out = self.stmts(block.body, names.child(group), inner_env, cur, first_copy=True)
        finally:
            self.open_blocks.pop()
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
        if kind in PARTS:
            raise ArchError(f"'{kind}' belongs inside '{PARTS[kind]} {{ }}'", row.words_loc)
        combinator = COMBINATORS[kind]
        sc = self.scope(env, cur)
        for opt in row.options:
            if opt.key not in ops.base.ROW_OPTIONS | combinator.options:
                raise ArchError(f"'{kind}' has no option '{opt.key}'", opt.loc)
        group = self.row_name(row, names, kind)
        ref = RowRef(group, row.loc.line, row.loc.col, row.text)
        with self.body_of(row):
            out = combinator.build(self, row, names.child(group), env, cur, first_copy, group, ref)
        post = self.post_ops(row, _NO_OP, sc) if row.option("after") else []
        return self.apply_post(post, group, out, ref, sc) if post else out

    def scale(self, row: Row, inner: NameScope, env: dict, cur: str, first_copy: bool,
              group: str, ref: RowRef) -> str:
        gate = self.stmts(row.body, inner, env, cur, first_copy)
        return self.combine("scale", (cur, gate), group, ref, row)

    def concat(self, row: Row, inner: NameScope, env: dict, cur: str, first_copy: bool,
               group: str, ref: RowRef) -> str:
        branches = [st for st in row.body if isinstance(st, Row)]
        if not branches or any(st.head != "branch" or st.body is None for st in branches):
            raise ArchError("a concat body holds only `branch { … }` rows", row.words_loc)
        outs = []
        for st in branches:
            cond = st.option("if")
            if cond is not None and not evaluate_value(cond.value, self.scope(env, cur)):
                continue
            bname = self.row_name(st, inner, "branch")
            outs.append(self.stmts(st.body, inner.child(bname), env, cur, first_copy))
        return self.combine("concat", tuple(outs), group, ref, row) if len(outs) > 1 else outs[0]

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
        return self.combine("residual", (out, skip), group, ref, row)

    def combine(self, kind: str, inputs: tuple, group: str, ref: RowRef, row: Row) -> str:
        op = ops.lookup(COMBINATORS[kind].joins)
        args = ops.RowArgs(op_loc=row.words_loc, in_shapes=tuple(self.shapes[t] for t in inputs),
                           at_defaults=self.checks)
        with self.shape_checks():
            attrs = op.configure(args)
        return self.add_node(f"{group}.{op.short}", op, attrs, inputs, ref)


# Well-known layers and activations that archdsl does not have. For these a did-you-mean would name
# a different function (swish -> hswish, gelu -> relu), so the diagnostic says what they are instead.
# An entry that becomes an op (or an op's alias) resolves before this table is consulted.
OTHER_FUNCTIONS = {
    "swish": "x·sigmoid(x), also called SiLU", "silu": "x·sigmoid(x), also called swish",
    "gelu": "the Gaussian error linear unit", "elu": "the exponential linear unit",
    "selu": "the scaled exponential linear unit", "mish": "x·tanh(softplus(x))", "tanh": "the hyperbolic tangent",
    "softplus": "log(1 + e^x)", "leaky_relu": "max(x, a·x)", "leakyrelu": "max(x, a·x)", "prelu": "max(x, a·x), a learnt",
    "layernorm": "layer normalisation", "groupnorm": "group normalisation", "lrn": "local response normalisation",
}


# Other names of archdsl's ops, for the hint when the registry does not list them as aliases.
SYNONYMS = {"swish": "silu", "hard_swish": "hswish", "hardswish": "hswish", "hard_sigmoid": "hsigmoid",
            "hardsigmoid": "hsigmoid", "batch_norm": "bn"}


def _row_op_names() -> list[str]:
    """The ops a row can name (the ones that join tensors are written as combinators)."""
    return [name for name in ops.op_names() if ops.lookup(name).arity == 1]


def _joiner_hint(op) -> str:
    for kind, combinator in COMBINATORS.items():
        if combinator.joins == op.name:
            return f"write `{kind} {{ … }}`: {combinator.doc}"
    return "it is made by residual, scale and concat bodies"  # pragma: no cover


def _shown(value) -> str:
    if isinstance(value, list):
        return "+".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _window_arithmetic(node: Node) -> str:
    """What decides a windowed op's output size (kernel, stride and padding), as the sum it makes."""
    a = node.attrs
    if not (isinstance(a, Window) and a.slides):
        return ""
    (kh, kw), (sh, sw), (t, l, b, r) = a.kernel, a.stride, a.pads
    x, out = node.in_shapes[0], node.out_shape
    sums = [f"({x.h} + {t} + {b} - {kh}) // {sh} + 1 = {out.h}"]
    if (x.w, l, r, kw, sw) != (x.h, t, b, kh, sh):
        sums.append(f"({x.w} + {l} + {r} - {kw}) // {sw} + 1 = {out.w}")
    pad = f"padding {t}" if len({t, l, b, r}) == 1 else f"padding {t},{l} before and {b},{r} after"
    default = node.op.options.get("pad")
    why = f"'{node.op.name}' pads {default} unless pad= or a `defaults` line says otherwise" if default else ""
    return (f": (in + pad before + pad after - kernel) // stride + 1 = {' and '.join(sums)}, with the "
            f"{kh}x{kw} window and {pad}" + (f" ({why})" if why else ""))


def _stride_loc(row: RowRef) -> Loc:
    """Where the `/ sN` of a row is (or the whole row when it has none)."""
    import re

    m = re.search(r"/[ \t]*(s\S+)", row.text)
    if m is None:
        return Loc(row.line, row.col, len(row.text.split("#")[0].rstrip()))
    return Loc(row.line, row.col + m.start(1), len(m.group(1)))


COMBINATORS = {
    "residual": Combinator(_Elaborator.residual, "add", "x + f(x), with f's rows in the body",
                           frozenset({"shortcut"})),
    "scale": Combinator(_Elaborator.scale, "mul", "x · g(x), with the gate g's rows in the body"),
    "concat": Combinator(_Elaborator.concat, "concat", "branch { … } bodies joined along channels"),
}
STRUCTURAL = (*COMBINATORS, *PARTS)


_STATEMENTS = {  # statement type -> how it is elaborated (rows aside)
    InputStmt: _Elaborator.declare_input, WidthStmt: _Elaborator.set_width,
    ResolutionStmt: _Elaborator.set_resolution, AfterStmt: _Elaborator.set_after,
    DefaultsStmt: _Elaborator.set_defaults, BlockDef: _Elaborator.define_block, Invalid: _Elaborator.invalid,
}


class _Stop(Exception):
    """MAX_ERRORS diagnostics have been reported: stop elaborating."""


class _Skipped(Exception):
    """A shape error held back because an earlier error put the shapes out of step."""


class _NoOp:
    name = ""


_NO_OP = _NoOp()
