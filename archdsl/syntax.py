"""Spec text -> AST.

lark (LALR, contextual lexer, propagate_positions) parses the text; two Transformers, one
method per grammar rule, build frozen dataclasses that carry their source location:
`_Statements` for the spec and `_Expressions` for the inside of each `{...}`. Rows are sorted
here from a flat list of elements (words, stride, shapes, options) into their columns, so the
grammar stays free of op names. Both transformers are non-recursive, so however deep the
text nests, parsing never overflows Python's stack; the depth limits are checked here
(expressions) and in elaboration (bodies).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

from lark import Transformer_NonRecursive, v_args

from .errors import ArchError, Diagnostic, Loc
from .limits import MAX_ERRORS, MAX_EXPR_DEPTH, MAX_VALUE

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Num:
    value: float | int
    loc: Loc


@dataclass(frozen=True)
class Word:
    """A bare word used as a value (`after=bn+relu6`, `nl=HS`)."""

    name: str
    loc: Loc


@dataclass(frozen=True)
class Var:
    name: str
    loc: Loc


@dataclass(frozen=True)
class Attr:
    """`in.c`, `block.in.c`: obj is everything before the last dot."""

    obj: str
    name: str
    loc: Loc


@dataclass(frozen=True)
class Call:
    fn: str
    args: tuple
    loc: Loc


@dataclass(frozen=True)
class Chain:
    """`a + b - c`, `a * b / c`: operands combined left to right, one node however long."""

    first: "Expr"
    rest: tuple  # of (op, Expr, Loc of the operator)
    loc: Loc


@dataclass(frozen=True)
class BinOp:
    op: str
    left: "Expr"
    right: "Expr"
    loc: Loc


@dataclass(frozen=True)
class UnaryOp:
    op: str  # "-" or "not"
    operand: "Expr"
    loc: Loc


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" / "or"
    items: tuple
    loc: Loc


@dataclass(frozen=True)
class BadExpr:
    """An expression (or number) in a spec that did not parse: evaluating it raises its error,
    so the rest of the spec is still elaborated and every mistake reported."""

    error: ArchError
    loc: Loc


Expr = Union[Num, Word, Var, Attr, Call, Chain, BinOp, UnaryOp, BoolOp, BadExpr]

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class ShapeLit:
    dims: tuple  # of Expr
    loc: Loc


@dataclass(frozen=True)
class Value:
    """An option value: one or more atoms joined by `+`."""

    parts: tuple  # of Expr
    loc: Loc


@dataclass(frozen=True)
class Option:
    key: str
    value: Value
    loc: Loc


@dataclass(frozen=True)
class Row:
    """One line of a spec table, or a construct with a `{ ... }` body."""

    words: tuple  # op name words (or a block name, or residual/scale/concat/branch/shortcut)
    words_loc: Loc
    stride: Expr | None
    filter: ShapeLit | None
    dw: bool
    declared: ShapeLit | None
    options: tuple  # of Option
    flags: tuple  # of Word
    repeat: Expr | None
    body: tuple | None
    loc: Loc
    text: str

    @property
    def head(self) -> str:
        return " ".join(w.lower() for w in self.words)

    def option(self, key: str) -> Option | None:
        for opt in self.options:
            if opt.key == key:
                return opt
        return None


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    loc: Loc


@dataclass(frozen=True)
class InputStmt:
    shape: ShapeLit
    loc: Loc


@dataclass(frozen=True)
class WidthStmt:
    value: Value
    rounding: str
    rounding_arg: int | None
    loc: Loc
    rounding_loc: Loc | None = None


@dataclass(frozen=True)
class ResolutionStmt:
    value: Value
    loc: Loc


@dataclass(frozen=True)
class PostOp:
    name: str
    options: tuple  # of Option
    loc: Loc


@dataclass(frozen=True)
class AfterStmt:
    op: str
    op_loc: Loc
    post: tuple  # of PostOp
    loc: Loc


@dataclass(frozen=True)
class DefaultsStmt:
    """`defaults conv: pad=same_tf bias=yes`: option defaults for every row of an op type."""

    op: str
    op_loc: Loc
    options: tuple  # of Option
    loc: Loc


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple  # of Param
    body: tuple
    loc: Loc
    name_loc: Loc | None = None


@dataclass(frozen=True)
class Invalid:
    """A row that could not be sorted into its columns: elaborating it reports the error."""

    error: ArchError
    loc: Loc


@dataclass(frozen=True)
class Spec:
    name: str
    params: tuple  # of Param
    stmts: tuple
    filename: str
    source: str
    loc: Loc


# ---------------------------------------------------------------- parsing


@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    from .resources import grammar_path

    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        start=["start", "expr"],
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _loc(meta) -> Loc:
    """The location of a rule's match (its first line)."""
    line = getattr(meta, "line", None)
    if line is None:
        return Loc(1, 1)
    col, end = meta.column, getattr(meta, "end_column", None)
    width = (end - col) if (end is not None and getattr(meta, "end_line", line) == line) else 1
    return Loc(line, col, max(1, width))


def _token_loc(tok) -> Loc:
    return Loc(tok.line, tok.column, max(1, len(str(tok))))


def _number(tok, loc: Loc | None = None) -> float | int:
    text = str(tok)
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if not abs(value) <= MAX_VALUE:  # also catches 1e999, which reads as inf
        raise ArchError(f"number {text} is too large", loc or _token_loc(tok),
                        f"numbers in a spec are at most {MAX_VALUE:.0e} in size")
    return value


_PAPER_LABELS = {"pool", "classifier"}  # column labels Table 1 prints; accepted and ignored


def _unwrapped(fn, *args):
    """Run a transformer; an ArchError raised inside a rule method comes out as itself."""
    from lark.exceptions import VisitError

    try:
        return fn(*args)
    except VisitError as e:
        if isinstance(e.orig_exc, ArchError):
            raise e.orig_exc from None
        raise


# ---------------------------------------------------------------- expressions


def parse_expr_text(text: str, loc: Loc):
    """Parse the inside of a `{...}` at `loc` (the position of the opening brace)."""
    from lark.exceptions import LarkError, UnexpectedInput

    inner = text[1:-1] if text.startswith("{") else text
    if not inner.strip():
        raise ArchError("empty expression '{}'", loc, "write an expression between the braces, e.g. {in.c * 6}")
    try:
        tree = _parser().parse(inner, start="expr")
    except UnexpectedInput as e:
        col = loc.col + 1 + (getattr(e, "column", 1) or 1) - 1
        raise ArchError(f"malformed expression {text}", Loc(loc.line, col),
                        "expressions use numbers, parameters, in.c/in.h/in.w, + - * / // % **, "
                        "comparisons, and/or/not, and calls like max(a, b)") from None
    except LarkError:
        raise ArchError(f"malformed expression {text}", loc) from None
    return _unwrapped(_Expressions(loc).transform, tree)


@v_args(meta=True)
class _Expressions(Transformer_NonRecursive):
    """One method per rule of the grammar's `expr` part; columns are shifted to the spec text.
    (A `?rule -> alias` that matched a single operand passes it through.)"""

    def __init__(self, brace_loc: Loc):
        super().__init__()
        self.base = brace_loc
        self.depths: dict[int, int] = {}  # id(node) -> nesting depth (the nodes live until the end)

    def at(self, meta, width: int = 1) -> Loc:
        """Where a rule's match starts (the caret marks its first character)."""
        if getattr(meta, "line", None) is None:
            return self.base
        return Loc(self.base.line + meta.line - 1, self.base.col + meta.column, max(1, width))

    def tok_at(self, tok) -> Loc:
        return Loc(self.base.line + tok.line - 1, self.base.col + tok.column, max(1, len(str(tok))))

    def made(self, node, operands):
        """Count the node's depth (evaluation recurses over it; a flat 1,000-term sum is one node)
        and refuse expressions nested deeper than MAX_EXPR_DEPTH."""
        depth = 1 + max((self.depths.get(id(o), 0) for o in operands), default=0)
        if depth > MAX_EXPR_DEPTH:
            raise ArchError(f"expression nests more than {MAX_EXPR_DEPTH} levels deep", node.loc,
                            "split it with block parameters or network parameters")
        self.depths[id(node)] = depth
        return node

    def number(self, meta, ch):
        return Num(_number(ch[0], self.tok_at(ch[0])), self.tok_at(ch[0]))

    def var(self, meta, ch):
        return Var(str(ch[0]), self.tok_at(ch[0]))

    def attr(self, meta, ch):
        return Attr(".".join(str(c) for c in ch[:-1]), str(ch[-1]), self.at(meta, meta.end_column - meta.column))

    def call(self, meta, ch):
        return self.made(Call(str(ch[0]), tuple(ch[1:]), self.at(meta)), ch[1:])

    def neg(self, meta, ch):
        return self.made(UnaryOp("-", ch[0], self.at(meta)), ch)

    def not_(self, meta, ch):
        return self.made(UnaryOp("not", ch[0], self.at(meta)), ch)

    def or_(self, meta, ch):
        return ch[0] if len(ch) == 1 else self.made(BoolOp("or", tuple(ch), self.at(meta)), ch)

    def and_(self, meta, ch):
        return ch[0] if len(ch) == 1 else self.made(BoolOp("and", tuple(ch), self.at(meta)), ch)

    def pow(self, meta, ch):
        return ch[0] if len(ch) == 1 else self.made(BinOp("**", ch[0], ch[-1], self.at(meta)), ch)

    def compare(self, meta, ch):
        return ch[0] if len(ch) == 1 else self.made(BinOp(str(ch[1]), ch[0], ch[2], self.at(meta)), ch)

    def arith(self, meta, ch):
        if len(ch) == 1:
            return ch[0]
        rest = tuple((str(ch[i]), ch[i + 1], self.tok_at(ch[i])) for i in range(1, len(ch), 2))
        return self.made(Chain(ch[0], rest, self.at(meta)), ch[::2])


# ---------------------------------------------------------------- statements


def _deferred(text: str, loc: Loc) -> Expr:
    """A number or `{expression}` in a statement; one that does not parse becomes a BadExpr."""
    try:
        if text.startswith("{"):
            return parse_expr_text(text, loc)
        return Num(_number(text, loc), loc)
    except ArchError as err:
        return BadExpr(err, loc)


def _shape(tok) -> ShapeLit:
    """Split a SHAPE token like `3 x 3x{in.c}x64` into dimension expressions."""
    text, base = str(tok), _token_loc(tok)
    dims = [_deferred(m.group(), Loc(base.line, base.col + m.start(), len(m.group())))
            for m in re.finditer(r"\d+|\{[^{}\n]*\}", text)]
    return ShapeLit(tuple(dims), base)


def _atom(tok) -> Expr:
    if tok.type in ("NUMBER", "SIGNED_NUMBER", "EXPR"):
        return _deferred(str(tok), _token_loc(tok))
    return Word(str(tok), _token_loc(tok))


def _words(tokens) -> tuple[str, Loc]:
    """`after conv dw:` -> ("conv dw", the location of the words)."""
    words = [t for t in tokens if getattr(t, "type", None) == "NAME"]
    return " ".join(str(w).lower() for w in words), Loc(words[0].line, words[0].column, len(" ".join(words)))


@dataclass(frozen=True)
class _Element:
    """One element of a row before the row sorts its columns: a word, stride, shape, option..."""

    kind: str
    tok: object
    value: object = None


class _Body(tuple):
    """The statements of a `{ ... }` body (a tuple that a row can tell from its elements)."""


class _Header(tuple):
    """(name token, params, loc) of the `network` line."""


class _PostOption(tuple):
    """(Option,) following an op in an `after` line."""


@v_args(meta=True)
class _Statements(Transformer_NonRecursive):
    """One method per rule of the grammar's statement part."""

    def __init__(self, source_lines: list[str]):
        super().__init__()
        self.lines = source_lines

    def start(self, meta, ch):
        header = next((c for c in ch if isinstance(c, _Header)), None)
        if header is None:
            raise ArchError("a spec starts with a `network` line", Loc(1, 1),
                            "e.g. network mobilenet_v1(alpha = 1.0, rho = 1.0, classes = 1000)")
        return header, tuple(c for c in ch if not isinstance(c, _Header))

    def header(self, meta, ch):
        return _Header((ch[0], tuple(ch[1:]), _loc(meta)))

    def param(self, meta, ch):
        return Param(str(ch[0]), ch[1], _token_loc(ch[0]))

    def block_param(self, meta, ch):
        return Param(str(ch[0]), ch[1] if len(ch) > 1 else None, _token_loc(ch[0]))

    def literal(self, meta, ch):
        return _atom(ch[0])

    def value(self, meta, ch):
        parts = tuple(_atom(t) for t in ch)
        return Value(parts, parts[0].loc if parts else Loc(1, 1))

    def input_stmt(self, meta, ch):
        return InputStmt(_shape(ch[0]), _loc(meta))

    def width_stmt(self, meta, ch):
        rounding, arg, rloc = "floor", None, None
        if len(ch) > 1:
            rounding, rloc = str(ch[1]), _token_loc(ch[1])
            if len(ch) > 2:
                arg = _number(ch[2])
                rloc = Loc(rloc.line, rloc.col, ch[2].end_column + 1 - rloc.col)
        return WidthStmt(ch[0], rounding, arg, _loc(meta), rloc)

    def round_arg(self, meta, ch):
        return ch[0]

    def resolution_stmt(self, meta, ch):
        return ResolutionStmt(ch[0], _loc(meta))

    def post_op(self, meta, ch):
        return PostOp(str(ch[0]), (), _token_loc(ch[0]))

    def post_option(self, meta, ch):
        key_tok, value = ch
        return _PostOption((Option(str(key_tok)[:-1], value, _token_loc(key_tok)),))

    def after_stmt(self, meta, ch):
        post: list[PostOp] = []
        for item in ch:
            if isinstance(item, PostOp):
                post.append(item)
            elif isinstance(item, _PostOption):
                (opt,) = item
                if not post:
                    raise ArchError(f"option '{opt.key}' must follow an op name", opt.loc)
                last = post[-1]
                post[-1] = PostOp(last.name, last.options + (opt,), last.loc)
        op, op_loc = _words(ch)
        return AfterStmt(op, op_loc, tuple(post), _loc(meta))

    def defaults_stmt(self, meta, ch):
        keys = [c for c in ch if getattr(c, "type", None) == "OPTKEY"]
        values = [c for c in ch if isinstance(c, Value)]
        options = tuple(Option(str(k)[:-1], v, _token_loc(k)) for k, v in zip(keys, values))
        op, op_loc = _words(ch)
        return DefaultsStmt(op, op_loc, options, _loc(meta))

    def block_def(self, meta, ch):
        return BlockDef(str(ch[0]), tuple(ch[1:-1]), tuple(ch[-1]), _loc(meta), _token_loc(ch[0]))

    def body(self, meta, ch):
        return _Body(ch)

    # the elements of a row, sorted into columns by row()
    def word(self, meta, ch):
        return _Element("word", ch[0])

    def stride(self, meta, ch):
        tok = ch[0]
        text, at = str(tok)[1:], _token_loc(tok)
        return _Element("stride", tok, _deferred(text, at.shifted(1) if text.startswith("{") else at))

    def shape(self, meta, ch):
        return _Element("shape", ch[0], _shape(ch[0]))

    def declared(self, meta, ch):
        return _Element("declared", ch[0], _shape(ch[0]))

    def option(self, meta, ch):
        return _Element("option", ch[0], ch[1])

    def repeat(self, meta, ch):
        return _Element("repeat", ch[0])

    def stray_expr(self, meta, ch):
        return _Element("stray_expr", ch[0])

    def row(self, meta, ch):
        loc = _loc(meta)
        text = self.lines[loc.line - 1].strip() if 0 < loc.line <= len(self.lines) else ""
        elements = [c for c in ch if isinstance(c, _Element)]
        bodies = [c for c in ch if isinstance(c, _Body)]
        try:
            return _sort_row(elements, tuple(bodies[0]) if bodies else None, loc, text)
        except ArchError as err:
            return Invalid(err, loc)


def _sort_row(elements: list[_Element], body: tuple | None, loc: Loc, text: str) -> Row:
    """Sort a row's elements into its columns: op words, stride, filter, declared input, options."""
    words: list = []
    stride = filter_ = declared = repeat = None
    dw = False
    options: list[Option] = []
    flags: list[Word] = []
    seen_other = False  # has anything but op words been seen?
    label_only = False  # the filter column held only a label
    for i, el in enumerate(elements):
        kind, tok = el.kind, el.tok
        at = _token_loc(tok)
        if kind == "repeat":
            if i != 0:
                raise ArchError(f"'{tok}' repeat must start the row", at)
            count_text = "".join(c for c in str(tok) if c.isdigit())
            count = _number(count_text, Loc(at.line, at.col, len(count_text)))
            repeat = Num(count, at)
            if body is None:
                raise ArchError(
                    f"'{str(tok).strip()}' repeats a group of rows, which needs braces", at,
                    f"the paper's '{count}×' spans the rows printed beside it; wrap them: "
                    f"{count}x {{ ... }} on its own line with the rows inside and '}}' after them "
                    f"(to repeat a single row, add the option n={count})")
            continue
        if kind == "word":
            word = str(tok)
            if not seen_other:
                words.append(tok)
            elif word.lower() == "dw" and filter_ is not None and declared is None and not dw:
                dw = True
            elif word.lower() in _PAPER_LABELS and filter_ is None:
                # Table 1's "Pool 7 × 7" and "Classifier" filter-column labels; "Classifier"
                # stands for the whole column, so the next shape is the input size.
                label_only = word.lower() == "classifier"
            else:
                flags.append(Word(word, at))
            continue
        seen_other = True
        if kind == "stride":
            if stride is not None or filter_ is not None or declared is not None or options or flags:
                raise ArchError("the stride goes right after the op name", at,
                                "e.g. conv dw / s2  3x3x64 dw")
            stride = el.value
        elif kind == "shape":
            if filter_ is None and declared is None and not label_only:
                filter_ = el.value
            elif declared is None:
                declared = el.value  # Table 1 prints the input size without '@'
            else:
                raise ArchError("one shape too many on this row", at,
                                "a row has at most a filter shape and an input size (@ HxWxC)")
        elif kind == "declared":
            if declared is not None:
                raise ArchError("the input size is given twice on this row", at)
            declared = el.value
        elif kind == "option":
            key = str(tok)[:-1]
            if any(o.key == key for o in options):
                raise ArchError(f"option '{key}' is given twice", at)
            options.append(Option(key, el.value, at))
        elif kind == "stray_expr":
            raise ArchError(f"unexpected expression {tok} on this row", at,
                            "expressions go inside a shape (1x1x{in.c}x64), a stride (s{s}) "
                            "or an option value (c={classes})")
    if not words and repeat is None:
        raise ArchError("a row starts with an op name", _token_loc(elements[0].tok),
                        "e.g. conv / s2  3x3x3x32  @ 224x224x3")
    if words:
        words_loc = Loc(words[0].line, words[0].column,
                        words[-1].column + len(str(words[-1])) - words[0].column)
    else:
        words_loc = _token_loc(elements[0].tok)
    return Row(tuple(str(w) for w in words), words_loc, stride, filter_, dw, declared,
               tuple(options), tuple(flags), repeat, body, loc, text)


def parse(source: str, filename: str = "<spec>") -> Spec:
    """Parse spec text into an AST. Raises ArchError (with the source attached) on any error: every
    syntax error of the text (up to MAX_ERRORS), found by parsing again with each bad line blanked."""
    from lark.exceptions import LarkError

    text = source if source.endswith("\n") else source + "\n"
    errors: list[ArchError] = []
    blanked: set[int] = set()
    try:
        while True:
            try:
                tree = _parser().parse(text, start="start")
                break
            except LarkError as e:
                err = _syntax_error(e, text)
                errors.append(err)
                line = err.diagnostics[0].loc.line
                if err.diagnostics[0].message == "unexpected end of file" or line in blanked \
                        or len(errors) >= MAX_ERRORS:
                    break
                text = _blank_line(text, line)
                blanked.add(line)
        if errors:
            diagnostics = [d for err in errors for d in err.diagnostics]
            if len(errors) >= MAX_ERRORS:
                diagnostics.append(Diagnostic(f"stopping after {MAX_ERRORS} errors"))
            raise ArchError.many(diagnostics)
        (name_tok, params, loc), stmts = _unwrapped(_Statements(text.splitlines()).transform, tree)
        return Spec(str(name_tok), params, stmts, filename, source, loc)
    except ArchError as err:
        raise err.with_source(filename, source)


def _blank_line(text: str, line: int) -> str:
    """The text with a line that failed to parse emptied, so the lines after it can be parsed. A line
    that opens a body keeps a body (`1x {`), so the braces after it still balance."""
    lines = text.split("\n")
    code = lines[line - 1].split("#")[0].rstrip()
    lines[line - 1] = "1x {" if code.endswith("{") else ""
    return "\n".join(lines)


def _syntax_error(e, text: str) -> ArchError:
    """lark's parse error, as a diagnostic."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        hint = None
        if ch == "{":
            hint = "a '{' that opens a body must end its line; expressions in braces must close on the same line"
        elif ch == "}":
            hint = "'}' closes a body and goes on its own line"
        return ArchError(f"unexpected character {ch!r}", Loc(e.line, e.column), hint)
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            return ArchError("unexpected end of file", Loc(max(1, text.count("\n")), 1), "is a '}' missing?")
        shown = "end of line" if tok.type == "_NL" else repr(str(tok))
        expected = _describe_expected(e.expected)
        hint = f"expected {expected}" if expected else None
        line = text.splitlines()[tok.line - 1] if 0 < tok.line <= text.count("\n") else ""
        if tok.type == "NUMBER" and re.match(r"\s*input\s+\d+\s*(#.*)?$", line):
            hint = (f"an input is HxWxC; a vector of {tok} features (the input of an fc layer) is "
                    f"input 1x1x{tok}")
        return ArchError(f"unexpected {shown}", Loc(tok.line, tok.column, max(1, len(str(tok).rstrip()))), hint)
    if isinstance(e, UnexpectedEOF):
        return ArchError("unexpected end of file", Loc(max(1, text.count("\n")), 1), "is a '}' missing?")
    if isinstance(e, UnexpectedInput):  # pragma: no cover - other lark input errors
        return ArchError("syntax error", Loc(getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1))
    return ArchError(f"syntax error: {e}", Loc(1, 1))  # pragma: no cover


_TERMINAL_WORDS = {
    "NAME": "a name", "SHAPE": "a shape like 3x3x32", "NUMBER": "a number", "_NL": "end of line",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "EQUAL": "'='", "COLON": "':'", "LBRACE": "'{'",
    "RBRACE": "'}'", "SLASH": "'/'", "AT": "'@'", "OPTKEY": "an option key=", "EXPR": "an {expression}",
    "STRIDE": "a stride like s2", "REPEAT": "a repeat like 5x", "SIGNED_NUMBER": "a number",
}


def _describe_expected(expected) -> str:
    names = sorted({_TERMINAL_WORDS.get(t, t.lower().strip("_")) for t in expected
                    if not t.startswith("__")})
    if len(names) > 6:
        names = names[:6] + ["…"]
    return ", ".join(names)
