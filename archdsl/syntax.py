"""Spec text -> AST.

lark (LALR, contextual lexer, propagate_positions) parses the text; a Transformer
builds frozen dataclasses that carry their source location. Rows are sorted here
from a flat list of elements (words, stride, shapes, options) into their columns,
so the grammar stays free of op names.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Union

from .errors import ArchError, Loc

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


Expr = Union[Num, Word, Var, Attr, Call, BinOp, UnaryOp, BoolOp]

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


def _loc(meta_or_token, width: int | None = None) -> Loc:
    line = getattr(meta_or_token, "line", None)
    col = getattr(meta_or_token, "column", None)
    if line is None:
        return Loc(1, 1)
    if width is None:
        end = getattr(meta_or_token, "end_column", None)
        end_line = getattr(meta_or_token, "end_line", line)
        width = (end - col) if (end is not None and end_line == line) else 1
    return Loc(line, col, max(1, width))


_PAPER_LABELS = {"pool", "classifier"}  # column labels Table 1 prints; accepted and ignored
_STRUCTURAL = {"residual", "scale", "concat", "branch", "shortcut"}


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
    return _ExprBuilder(loc).transform(tree)


class _ExprBuilder:
    """Turns an `expr` parse tree into Expr nodes, shifting columns to the spec text."""

    def __init__(self, brace_loc: Loc):
        self.base = brace_loc

    def _at(self, node) -> Loc:
        line = getattr(node, "line", None) or getattr(getattr(node, "meta", None), "line", None)
        col = getattr(node, "column", None) or getattr(getattr(node, "meta", None), "column", None)
        if col is None:
            return self.base
        return Loc(self.base.line + (line or 1) - 1, self.base.col + col, 1)

    def transform(self, node):
        from lark import Token, Tree

        if isinstance(node, Token):
            if node.type == "NUMBER":
                return Num(_number(node), self._at(node))
            return Var(str(node), self._at(node))
        assert isinstance(node, Tree)
        kind, ch, at = node.data, node.children, self._at(node)
        if len(ch) == 1 and kind in ("or_", "and_", "pow", "arith", "compare"):
            return self.transform(ch[0])  # an aliased `?rule` with nothing to combine
        if kind == "number":
            return Num(_number(ch[0]), at)
        if kind == "var":
            return Var(str(ch[0]), Loc(at.line, at.col, len(str(ch[0]))))
        if kind == "attr":
            return Attr(".".join(str(c) for c in ch[:-1]), str(ch[-1]), at)
        if kind == "call":
            return Call(str(ch[0]), tuple(self.transform(c) for c in ch[1:]), at)
        if kind == "neg":
            return UnaryOp("-", self.transform(ch[0]), at)
        if kind == "not_":
            return UnaryOp("not", self.transform(ch[0]), at)
        if kind in ("or_", "and_"):
            return BoolOp(kind[:-1], tuple(self.transform(c) for c in ch), at)
        if kind == "pow":
            return BinOp("**", self.transform(ch[0]), self.transform(ch[1]), at)
        if kind in ("arith", "compare"):
            result = self.transform(ch[0])
            for i in range(1, len(ch), 2):
                result = BinOp(str(ch[i]), result, self.transform(ch[i + 1]), at)
            return result
        if len(ch) == 1:  # parenthesised
            return self.transform(ch[0])
        raise ArchError(f"unsupported expression form {kind!r}", at)  # pragma: no cover


def _number(tok) -> float | int:
    text = str(tok)
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _token_loc(tok) -> Loc:
    return Loc(tok.line, tok.column, max(1, len(str(tok))))


def _shape(tok) -> ShapeLit:
    """Split a SHAPE token like `3 x 3x{in.c}x64` into dimension expressions."""
    import re

    text, base = str(tok), _token_loc(tok)
    dims, pos = [], 0
    for m in re.finditer(r"\d+|\{[^{}\n]*\}", text):
        at = Loc(base.line, base.col + m.start(), len(m.group()))
        if m.group().startswith("{"):
            dims.append(parse_expr_text(m.group(), at))
        else:
            dims.append(Num(int(m.group()), at))
        pos = m.end()
    del pos
    return ShapeLit(tuple(dims), base)


def _atom(tok) -> Expr:
    loc = _token_loc(tok)
    if tok.type in ("NUMBER", "SIGNED_NUMBER"):
        return Num(_number(tok), loc)
    if tok.type == "EXPR":
        return parse_expr_text(str(tok), loc)
    return Word(str(tok), loc)


def _value(tree) -> Value:
    parts = tuple(_atom(t) for t in tree.children)
    return Value(parts, parts[0].loc if parts else Loc(1, 1))


class _Builder:
    def __init__(self, source_lines: list[str]):
        self.lines = source_lines

    def spec(self, tree, filename: str, source: str) -> Spec:
        header, stmts = None, []
        for ch in tree.children:
            if getattr(ch, "data", None) == "header":
                header = ch
            else:
                stmts.append(self.stmt(ch))
        if header is None:
            raise ArchError("a spec starts with a `network` line", Loc(1, 1),
                            "e.g. network mobilenet_v1(alpha = 1.0, rho = 1.0, classes = 1000)")
        name_tok = header.children[0]
        params = tuple(self.param(p, need_default=True) for p in header.children[1:])
        return Spec(str(name_tok), params, tuple(stmts), filename, source, _loc(header.meta))

    def param(self, tree, need_default: bool) -> Param:
        name = tree.children[0]
        default = None
        if len(tree.children) > 1:
            lit = tree.children[1]
            tok = lit.children[0] if hasattr(lit, "children") else lit
            default = _atom(tok)
        elif need_default:
            raise ArchError(f"network parameter '{name}' needs a default value", _token_loc(name),
                            f"write {name} = <value>")
        return Param(str(name), default, _token_loc(name))

    def stmt(self, tree):
        kind = tree.data
        loc = _loc(tree.meta)
        ch = tree.children
        if kind == "input_stmt":
            return InputStmt(_shape(ch[0]), loc)
        if kind == "width_stmt":
            rounding, arg, rloc = "floor", None, None
            if len(ch) > 1:
                rounding, rloc = str(ch[1]), _token_loc(ch[1])
                if len(ch) > 2:
                    arg = _number(ch[2].children[0])
            return WidthStmt(_value(ch[0]), rounding, arg, loc, rloc)
        if kind == "resolution_stmt":
            return ResolutionStmt(_value(ch[0]), loc)
        if kind == "after_stmt":
            words = [c for c in ch if getattr(c, "type", None) == "NAME"]
            items = [c for c in ch if hasattr(c, "data")]
            post: list[PostOp] = []
            for item in items:
                if item.data == "post_op":
                    tok = item.children[0]
                    post.append(PostOp(str(tok), (), _token_loc(tok)))
                else:
                    key_tok, val = item.children
                    if not post:
                        raise ArchError(f"option '{key_tok[:-1]}' must follow an op name", _token_loc(key_tok))
                    last = post[-1]
                    opt = Option(str(key_tok)[:-1], _value(val), _token_loc(key_tok))
                    post[-1] = PostOp(last.name, last.options + (opt,), last.loc)
            op_loc = Loc(words[0].line, words[0].column, len(" ".join(words)))
            return AfterStmt(" ".join(str(w).lower() for w in words), op_loc, tuple(post), loc)
        if kind == "defaults_stmt":
            words = [c for c in ch if getattr(c, "type", None) == "NAME"]
            keys = [c for c in ch if getattr(c, "type", None) == "OPTKEY"]
            values = [c for c in ch if getattr(c, "data", None) == "value"]
            options = tuple(Option(str(k)[:-1], _value(v), _token_loc(k)) for k, v in zip(keys, values))
            op_loc = Loc(words[0].line, words[0].column, len(" ".join(words)))
            return DefaultsStmt(" ".join(str(w).lower() for w in words), op_loc, options, loc)
        if kind == "block_def":
            name_tok = ch[0]
            params = tuple(self.param(p, need_default=False) for p in ch[1:-1])
            body = self.body(ch[-1])
            return BlockDef(str(name_tok), params, body, loc)
        if kind == "row":
            return self.row(tree)
        raise ArchError(f"unexpected statement {kind}", loc)  # pragma: no cover

    def body(self, tree) -> tuple:
        return tuple(self.stmt(c) for c in tree.children)

    def row(self, tree) -> Row:
        loc = _loc(tree.meta)
        text = self.lines[loc.line - 1].strip() if 0 < loc.line <= len(self.lines) else ""
        elements = [c for c in tree.children if c.data != "body"]
        bodies = [c for c in tree.children if c.data == "body"]
        body = self.body(bodies[0]) if bodies else None

        words: list = []
        stride = filter_ = declared = repeat = None
        dw = False
        options: list[Option] = []
        flags: list[Word] = []
        seen_other = False  # has anything but op words been seen?
        label_only = False  # the filter column held only a label
        for i, el in enumerate(elements):
            kind, tok = el.data, el.children[0]
            at = _token_loc(tok)
            if kind == "repeat":
                if i != 0:
                    raise ArchError(f"'{tok}' repeat must start the row", at)
                count = int("".join(c for c in str(tok) if c.isdigit()))
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
                body_text = str(tok)[1:]
                stride = (parse_expr_text(body_text, at.shifted(1)) if body_text.startswith("{")
                          else Num(int(body_text), at))
            elif kind == "shape":
                if filter_ is None and declared is None and not label_only:
                    filter_ = _shape(tok)
                elif declared is None:
                    declared = _shape(tok)  # Table 1 prints the input size without '@'
                else:
                    raise ArchError("one shape too many on this row", at,
                                    "a row has at most a filter shape and an input size (@ HxWxC)")
            elif kind == "declared":
                if declared is not None:
                    raise ArchError("the input size is given twice on this row", at)
                declared = _shape(tok)
            elif kind == "option":
                key = str(tok)[:-1]
                if any(o.key == key for o in options):
                    raise ArchError(f"option '{key}' is given twice", at)
                options.append(Option(key, _value(el.children[1]), at))
            elif kind == "stray_expr":
                raise ArchError(f"unexpected expression {tok} on this row", at,
                                "expressions go inside a shape (1x1x{in.c}x64), a stride (s{s}) "
                                "or an option value (c={classes})")
        if not words and repeat is None:
            first = elements[0].children[0]
            raise ArchError("a row starts with an op name", _token_loc(first),
                            "e.g. conv / s2  3x3x3x32  @ 224x224x3")
        if words:
            words_loc = Loc(words[0].line, words[0].column,
                            words[-1].column + len(str(words[-1])) - words[0].column)
        else:
            words_loc = _token_loc(elements[0].children[0])
        return Row(tuple(str(w) for w in words), words_loc, stride, filter_, dw, declared,
                   tuple(options), tuple(flags), repeat, body, loc, text)


def parse(source: str, filename: str = "<spec>") -> Spec:
    """Parse spec text into an AST. Raises ArchError (with the source attached) on any error."""
    from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    text = source if source.endswith("\n") else source + "\n"
    try:
        try:
            tree = _parser().parse(text, start="start")
        except UnexpectedCharacters as e:
            ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
            hint = None
            if ch == "{":
                hint = "a '{' that opens a body must end its line; expressions in braces must close on the same line"
            elif ch == "}":
                hint = "'}' closes a body and goes on its own line"
            raise ArchError(f"unexpected character {ch!r}", Loc(e.line, e.column), hint) from None
        except UnexpectedToken as e:
            tok = e.token
            if tok.type == "$END":
                raise ArchError("unexpected end of file", Loc(max(1, text.count("\n")), 1),
                                "is a '}' missing?") from None
            shown = "end of line" if tok.type == "_NL" else repr(str(tok))
            expected = _describe_expected(e.expected)
            raise ArchError(f"unexpected {shown}", Loc(tok.line, tok.column, max(1, len(str(tok).rstrip()))),
                            f"expected {expected}" if expected else None) from None
        except UnexpectedEOF:
            raise ArchError("unexpected end of file", Loc(max(1, text.count("\n")), 1), "is a '}' missing?") from None
        except UnexpectedInput as e:  # pragma: no cover - other lark input errors
            raise ArchError("syntax error", Loc(getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1)) from None
        except LarkError as e:  # pragma: no cover
            raise ArchError(f"syntax error: {e}", Loc(1, 1)) from None
        return _Builder(text.splitlines()).spec(tree, filename, source)
    except ArchError as err:
        raise err.with_source(filename, source)


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
