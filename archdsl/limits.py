"""How big a spec may make things. Every size a user can write is checked against one of these,
with a diagnostic at the token that exceeds it (docs/language.md, "Limits", lists them).

The limits are far above any real network (the largest zoo spec has a few hundred layers, 50
nesting levels would be a very deep table), and they keep elaboration fast and its recursion
bounded: `stats` computes numbers, not tensors, so a huge but valid network still answers at once.
"""
from __future__ import annotations

MAX_VALUE = 10**18  # |result| of any expression, literal or option value
MAX_SIZE = 2**31 - 1  # a dimension, channel count, stride, padding or count: what a C int holds
MAX_EXPR_DEPTH = 100  # nesting of an expression (unary minus, calls, **, parentheses around operators)
MAX_NESTING = 50  # bodies inside bodies: repeats, residual/scale/concat, and blocks using blocks
MAX_LAYERS = 20_000  # nodes in one elaborated network
MAX_ERRORS = 20  # diagnostics reported by one run before it stops
MAX_SWEEP = 1_000  # combinations in one `stats --sweep`
