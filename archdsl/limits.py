"""How big a spec may make things. Every size a user can write is checked against one of these,
with a diagnostic at the token that exceeds it (docs/language.md, "Limits", lists them).

The limits are far above any real network (the largest zoo spec has a few hundred layers, 50
nesting levels would be a very deep table), and they keep elaboration fast and its recursion
bounded: `stats` computes numbers, not tensors, so a huge but valid network still answers at once.
"""
from __future__ import annotations

from .errors import ArchError

MAX_VALUE = 10**18  # |result| of any expression, literal or option value
MAX_SIZE = 2**31 - 1  # a dimension, channel count, stride, padding or count: what a C int holds
MAX_EXPR_DEPTH = 100  # nesting of an expression (unary minus, calls, **, parentheses around operators)
MAX_NESTING = 50  # bodies inside bodies: repeats, residual/scale/concat, and blocks using blocks
MAX_LAYERS = 20_000  # nodes in one elaborated network
MAX_ERRORS = 20  # diagnostics reported by one run before it stops
MAX_SWEEP = 1_000  # combinations in one `stats --sweep`


# ---------------------------------------------------------------- building and running
# What code generation and running take on: a spec beyond these sizes is refused up front, with
# the size it would need, before any weight is drawn or any buffer allocated. `stats` is not
# limited by them (it only counts). Every path that makes or reads weights for a graph
# (weights.init_weights, weights.load_weights, importers.import_weights) calls check_buildable.

MAX_TENSOR_ELEMENTS = 2**31 - 1  # one tensor, weights or activations: the C runtime indexes with int
MAX_ARENA_BYTES = 4 << 30        # all live activations at once (float32)
MAX_WEIGHT_BYTES = 4 << 30       # all weights (float32)
MAX_MACS = 10**13                # mult-adds per image (VGG16 at 224: 1.5e10)


def _size(n: int) -> str:
    from .inputs import size_text

    return size_text(n)


def _n(n: int) -> str:
    from .inputs import count_text

    return count_text(n)


def _shape(shape) -> str:
    return "x".join(_n(d) for d in (shape.h, shape.w, shape.c))


def check_buildable(graph) -> None:
    """ArchError if `graph` is too large to generate code for or to run (see the limits above)."""
    from .analysis.costs import totals

    problems: list[str] = []
    shapes = [("the input", graph.input_shape)] + [(f"layer {n.name}'s output", n.out_shape) for n in graph.nodes]
    for what, shape in shapes:
        if shape.numel > MAX_TENSOR_ELEMENTS:
            problems.append(f"{what} is {_shape(shape)} = {_n(shape.numel)} values (at most {MAX_TENSOR_ELEMENTS:,})")
            break
    for key, spec in graph.parameters():
        if spec.numel > MAX_TENSOR_ELEMENTS:
            problems.append(f"the weight {key} has {_n(spec.numel)} values (at most {MAX_TENSOR_ELEMENTS:,})")
            break
    weight_bytes = 4 * sum(spec.numel for _, spec in graph.parameters())
    if weight_bytes > MAX_WEIGHT_BYTES:
        problems.append(f"the weights would take {_size(weight_bytes)} (at most {_size(MAX_WEIGHT_BYTES)})")
    macs = sum(n.macs for n in graph.nodes)
    if macs > MAX_MACS:
        problems.append(f"one image would take {_n(macs)} mult-adds (at most {MAX_MACS:,})")
    if not problems:  # the arena plan is only worth making for a graph of sane tensors
        arena = totals(graph)["peak_activation_bytes"]
        if arena > MAX_ARENA_BYTES:
            problems.append(f"the activations would need an arena of {_size(arena)} (at most {_size(MAX_ARENA_BYTES)})")
    if problems:
        raise ArchError(f"{graph.name} is too large to build or run: {problems[0]}", None,
                        "`archdsl stats` still reports its costs; check the spec's sizes and --set values",
                        notes=[(None, p) for p in problems[1:]])
