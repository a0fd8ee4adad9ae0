"""Evaluation of `{expressions}` over network parameters, block parameters and `in.c/in.h/in.w`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ArchError, did_you_mean
from .syntax import Attr, BinOp, BoolOp, Call, Expr, Num, UnaryOp, Value, Var, Word


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


def _builtin_functions(scope: Scope) -> dict[str, Callable]:
    funcs: dict[str, Callable] = {
        "min": min, "max": max, "abs": abs,
        "floor": lambda x: int(math.floor(x)), "ceil": lambda x: int(math.ceil(x)),
        "round": round_half_up, "int": int,
        "divisible": lambda v, d=8: make_divisible(v, int(d)),
    }
    if scope.width is not None:
        funcs["width"] = scope.width
    funcs.update(scope.functions)
    return funcs


def refers_to_input(expr: Expr) -> bool:
    """Does this expression read `in.*`? (Its value is then already width-scaled.)"""
    if isinstance(expr, Attr):
        return expr.obj in INPUT_OBJECTS
    if isinstance(expr, BinOp):
        return refers_to_input(expr.left) or refers_to_input(expr.right)
    if isinstance(expr, UnaryOp):
        return refers_to_input(expr.operand)
    if isinstance(expr, (BoolOp, Call)):
        return any(refers_to_input(e) for e in (expr.items if isinstance(expr, BoolOp) else expr.args))
    return False


def evaluate(expr: Expr, scope: Scope) -> Any:
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Word):
        if expr.name in scope.names:
            return scope.names[expr.name]
        if expr.name in ("true", "yes", "false", "no"):  # as for {yes}: if=no must drop the row
            return expr.name in ("true", "yes")
        return expr.name  # a bare word is a string value (nl=HS, after=bn+relu6)
    if isinstance(expr, Var):
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
    if isinstance(expr, Attr):
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
    if isinstance(expr, Call):
        funcs = _builtin_functions(scope)
        fn = funcs.get(expr.fn)
        if fn is None:
            guess = did_you_mean(expr.fn, list(funcs))
            raise ArchError(f"unknown function '{expr.fn}'", expr.loc,
                            f"did you mean '{guess}'?" if guess else f"functions: {', '.join(sorted(funcs))}")
        args = [evaluate(a, scope) for a in expr.args]
        try:
            return fn(*args)
        except (TypeError, ValueError) as e:
            raise ArchError(f"bad arguments to {expr.fn}(): {e}", expr.loc) from None
    if isinstance(expr, UnaryOp):
        v = evaluate(expr.operand, scope)
        if expr.op == "not":
            return not v
        _need_number(v, expr)
        return -v
    if isinstance(expr, BoolOp):
        if expr.op == "and":
            return all(bool(evaluate(e, scope)) for e in expr.items)
        return any(bool(evaluate(e, scope)) for e in expr.items)
    if isinstance(expr, BinOp):
        a, b = evaluate(expr.left, scope), evaluate(expr.right, scope)
        op = expr.op
        if op in ("==", "!="):
            return (a == b) if op == "==" else (a != b)
        _need_number(a, expr.left)
        _need_number(b, expr.right)
        try:
            if op == "+": return a + b
            if op == "-": return a - b
            if op == "*": return a * b
            if op == "/": return a / b
            if op == "//": return a // b
            if op == "%": return a % b
            if op == "**": return a ** b
            if op == "<": return a < b
            if op == ">": return a > b
            if op == "<=": return a <= b
            if op == ">=": return a >= b
        except ZeroDivisionError:
            raise ArchError("division by zero", expr.loc) from None
        except OverflowError:
            raise ArchError("number too large", expr.loc) from None
    raise ArchError("cannot evaluate this expression", getattr(expr, "loc", None))  # pragma: no cover


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
