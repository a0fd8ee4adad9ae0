"""Evaluation of `{expressions}` over network parameters, block parameters and `in.c/in.h/in.w`."""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ArchError, did_you_mean
from .limits import MAX_VALUE
from .syntax import Attr, BadExpr, BinOp, BoolOp, Call, Chain, Expr, Num, UnaryOp, Value, Var, Word


INPUT_OBJECTS = ("in", "block.in")  # in.c: the row's input; block.in.c: the enclosing block's input


def round_half_up(x: float) -> int:
    """round() that sends .5 up (Python's round() sends it to the even neighbour)."""
    return int(math.floor(x + 0.5))


def make_divisible(value: float, divisor: int) -> int:
    """The TF/timm channel rule: nearest multiple of `divisor`, never below 90% of `value`."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass
class Scope:
    """Names visible to an expression."""

    names: dict[str, Any]
    in_shape: Any = None  # TensorShape of the row's input, for in.c / in.h / in.w
    width: Callable[[float], int] | None = None  # the spec's α rounding rule, as width(c)
    functions: dict[str, Callable] = field(default_factory=dict)
    block_in: Any = None  # TensorShape of the enclosing block's input, for block.in.c / .h / .w


def _divisible(v, d=8):
    if isinstance(d, bool) or not isinstance(d, (int, float)) or d < 1 or d != int(d):
        raise ValueError(f"the divisor must be a whole number of at least 1, got {d!r}")
    return make_divisible(v, int(d))


def _builtin_functions(scope: Scope) -> dict[str, Callable]:
    funcs: dict[str, Callable] = {
        "min": min, "max": max, "abs": abs,
        "floor": lambda x: int(math.floor(x)), "ceil": lambda x: int(math.ceil(x)),
        "round": round_half_up, "int": int,
        "divisible": _divisible,
    }
    if scope.width is not None:
        funcs["width"] = scope.width
    funcs.update(scope.functions)
    return funcs


def _children(expr: Expr) -> tuple:
    if isinstance(expr, BinOp):
        return (expr.left, expr.right)
    if isinstance(expr, Chain):
        return (expr.first, *(e for _, e, _ in expr.rest))
    if isinstance(expr, UnaryOp):
        return (expr.operand,)
    if isinstance(expr, BoolOp):
        return expr.items
    if isinstance(expr, Call):
        return expr.args
    return ()


def refers_to_input(expr: Expr) -> bool:
    """Does this expression read `in.*` or `block.in.*`? (Its value is then already width-scaled.)"""
    if isinstance(expr, Attr):
        return expr.obj in INPUT_OBJECTS
    return any(refers_to_input(e) for e in _children(expr))


def _power(a, b):
    """a ** b, refused before it is computed when the result could not be a spec's number."""
    if a < 0 and not float(b).is_integer():
        raise ValueError("a negative number to a fractional power")
    if abs(a) > 1 and b * math.log2(abs(a)) > math.log2(MAX_VALUE):
        raise OverflowError
    if a == 0 and b < 0:
        raise ZeroDivisionError
    return a ** b


# The binary operators: symbol -> function of two numbers. (== and != compare any values.)
ARITHMETIC: dict[str, Callable] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": _power,
    "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}
EQUALITY: dict[str, Callable] = {"==": operator.eq, "!=": operator.ne}


def _bounded(value, loc):
    """Every number an expression produces stays finite and within MAX_VALUE."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= MAX_VALUE:
        raise ArchError("number too large", loc, f"numbers in a spec are at most {MAX_VALUE:.0e} in size")
    return value


def _apply(op: str, a, b, left, right, loc):
    if op in EQUALITY:
        return EQUALITY[op](a, b)
    _need_number(a, left)
    _need_number(b, right)
    try:
        return _bounded(ARITHMETIC[op](a, b), loc)
    except ZeroDivisionError:
        raise ArchError("division by zero", loc) from None
    except OverflowError:
        raise ArchError("number too large", loc, f"numbers in a spec are at most {MAX_VALUE:.0e} in size") from None
    except ValueError as e:
        raise ArchError(f"cannot compute {op}: {e}", loc) from None


def _word(expr: Word, scope: Scope):
    if expr.name in scope.names:
        return scope.names[expr.name]
    if expr.name in ("true", "yes", "false", "no"):  # as for {yes}: if=no must drop the row
        return expr.name in ("true", "yes")
    return expr.name  # a bare word is a string value (nl=HS, after=bn+relu6)


def _var(expr: Var, scope: Scope):
    if expr.name in scope.names:
        return scope.names[expr.name]
    if expr.name in ("true", "yes"):
        return True
    if expr.name in ("false", "no"):
        return False
    guess = did_you_mean(expr.name, list(scope.names))
    raise ArchError(f"unknown name '{expr.name}'", expr.loc,
                    f"did you mean '{guess}'?" if guess else
                    f"names here: {', '.join(sorted(scope.names)) or '(none)'}, in.c, in.h, in.w")


def _attr(expr: Attr, scope: Scope):
    if expr.obj not in INPUT_OBJECTS or expr.name not in ("c", "h", "w"):
        raise ArchError(f"unknown name '{expr.obj}.{expr.name}'", expr.loc,
                        "the row's input shape is in.c, in.h and in.w; inside a block, the block's "
                        "input is block.in.c, block.in.h and block.in.w")
    shape = scope.in_shape if expr.obj == "in" else scope.block_in
    if shape is None and expr.obj == "block.in":
        raise ArchError(f"'block.in.{expr.name}' is only defined inside a block", expr.loc,
                        "block.in is the input of the row that uses a `block NAME(...) { }`; "
                        "here, write in.c, in.h or in.w (the row's own input)")
    if shape is None:
        raise ArchError(f"'in.{expr.name}' has no input here", expr.loc)
    return getattr(shape, expr.name)


def _call(expr: Call, scope: Scope):
    funcs = _builtin_functions(scope)
    fn = funcs.get(expr.fn)
    if fn is None:
        guess = did_you_mean(expr.fn, list(funcs))
        raise ArchError(f"unknown function '{expr.fn}'", expr.loc,
                        f"did you mean '{guess}'?" if guess else f"functions: {', '.join(sorted(funcs))}")
    args = [evaluate(a, scope) for a in expr.args]
    try:
        return _bounded(fn(*args), expr.loc)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as e:
        raise ArchError(f"bad arguments to {expr.fn}(): {e}", expr.loc) from None


def _unary(expr: UnaryOp, scope: Scope):
    v = evaluate(expr.operand, scope)
    if expr.op == "not":
        return not v
    _need_number(v, expr)
    return -v


def _bool(expr: BoolOp, scope: Scope):
    combine = all if expr.op == "and" else any
    return combine(bool(evaluate(e, scope)) for e in expr.items)


def _binary(expr: BinOp, scope: Scope):
    a, b = evaluate(expr.left, scope), evaluate(expr.right, scope)
    return _apply(expr.op, a, b, expr.left, expr.right, expr.loc)


def _chain(expr: Chain, scope: Scope):
    """a + b - c ...: left to right, in a loop (a 1,000-term sum is not 1,000 nested calls)."""
    value, left = evaluate(expr.first, scope), expr.first
    for op, right, op_loc in expr.rest:
        value = _apply(op, value, evaluate(right, scope), left, right, op_loc)
        left = expr
    return value


def _raise(expr: BadExpr, scope: Scope):
    raise expr.error


# Expression node type -> its evaluation.
EVALUATORS: dict[type, Callable[[Any, Scope], Any]] = {
    Num: lambda e, scope: e.value, Word: _word, Var: _var, Attr: _attr, Call: _call,
    UnaryOp: _unary, BoolOp: _bool, BinOp: _binary, Chain: _chain, BadExpr: _raise,
}


def evaluate(expr: Expr, scope: Scope) -> Any:
    return EVALUATORS[type(expr)](expr, scope)


def _need_number(v, expr) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArchError(f"expected a number, got {v!r}", expr.loc)


def as_int(value: Any, expr, what: str) -> int:
    """A dimension, stride or count: a whole number (5.0 is accepted as 5)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArchError(f"{what} must be a number, got {value!r}", expr.loc)
    if isinstance(value, float):
        if not value.is_integer():
            raise ArchError(f"{what} must be a whole number, got {value:g}", expr.loc,
                            "wrap the expression in round(), floor() or ceil()")
        value = int(value)
    return value


def evaluate_value(value: Value, scope: Scope) -> Any:
    """An option value. `a+b` joins words (after=bn+relu6) into a list."""
    if len(value.parts) == 1:
        return evaluate(value.parts[0], scope)
    return [evaluate(p, scope) for p in value.parts]
