"""Activation memory: one static arena planned from tensor lifetimes.

The same plan gives `stats` its peak activation memory and the C target its arena,
so the two numbers cannot disagree. The arena holds every tensor of the fused
schedule, the network input and output included (the C API exposes pointers into
it). Element-wise steps write over their input when nothing later reads it;
reshapes (flatten, dropout) are views. Buffers are placed greedily at the lowest offset
that does not overlap a buffer alive at the same time, in the best of a few orders.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from .schedule import Step, schedule

ALIGN = 16  # bytes; keeps every buffer aligned for SIMD loads


@dataclass
class Buffer:
    index: int
    size: int  # bytes, aligned
    first: int  # step index that writes it (-1: the network input)
    last: int  # last step index that reads it
    offset: int = 0


@dataclass
class MemoryPlan:
    buffer_of: dict[str, int]  # tensor name -> buffer index
    buffers: list[Buffer]
    arena_bytes: int
    peak_live_bytes: int  # the largest set of buffers alive at once: a lower bound for any arena

    def offset(self, tensor: str) -> int:
        return self.buffers[self.buffer_of[tensor]].offset


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, steps: list[Step] | None = None, elem_bytes: int = 4) -> MemoryPlan:
    steps = steps if steps is not None else schedule(graph)
    last_read: dict[str, int] = {}
    for k, st in enumerate(steps):
        for t in st.inputs:
            last_read[t] = k
    last_read[graph.output] = len(steps)  # the output outlives the run

    buffers: list[Buffer] = []
    buffer_of: dict[str, int] = {}

    def new_buffer(tensor: str, numel: int, first: int) -> None:
        buffers.append(Buffer(len(buffers), _aligned(numel * elem_bytes), first, first))
        buffer_of[tensor] = len(buffers) - 1

    def assign(tensor: str, index: int) -> None:
        buffer_of[tensor] = index
        buffers[index].last = max(buffers[index].last, last_read.get(tensor, buffers[index].first))

    new_buffer(graph.input_name, graph.input_shape.numel, -1)
    assign(graph.input_name, 0)
    for k, st in enumerate(steps):
        main = st.main
        src_buf = buffers[buffer_of[st.inputs[0]]]
        # buf.last is the last read of every tensor in the buffer so far: in place is safe
        # when nothing reads the buffer after this step.
        reuse = main.op.alias_input or (
            main.op.elementwise and src_buf.last == k
            and src_buf.size >= _aligned(st.out_shape.numel * elem_bytes))
        if reuse:
            assign(st.output, src_buf.index)
        else:
            new_buffer(st.output, st.out_shape.numel, k)
            assign(st.output, len(buffers) - 1)
        for node in st.nodes[:-1]:  # names inside a fused step share its output
            buffer_of.setdefault(node.name, buffer_of[st.output])

    # Who is alive at each step, so placement only looks at buffers that overlap in time.
    live: dict[int, list[Buffer]] = {}
    for buf in buffers:
        for k in range(buf.first, buf.last + 1):
            live.setdefault(k, []).append(buf)
    peak = max(sum(b.size for b in bufs) for bufs in live.values())

    # Greedy placement is a heuristic: largest-first suits graphs with long-lived skips,
    # execution order suits chains. Try both (and by lifetime area) and keep the smallest arena.
    orders = (
        lambda b: (-b.size, b.first),
        lambda b: (b.first, -b.size),
        lambda b: (-b.size * (b.last - b.first + 1), b.first),
    )
    best: dict[int, int] | None = None
    for order in orders:
        offsets = _place(buffers, live, order)
        arena = max((offsets[b.index] + b.size for b in buffers), default=0)
        if best is None or arena < best_arena:
            best, best_arena = offsets, arena
    for buf in buffers:
        buf.offset = best[buf.index]
    arena = best_arena
    return MemoryPlan(buffer_of, buffers, arena, peak)


def _place(buffers: list[Buffer], live: dict[int, list[Buffer]], order) -> dict[int, int]:
    """Offsets: each buffer, in the given order, at the lowest offset clear of the placed buffers
    that are alive at the same time."""
    offsets: dict[int, int] = {}
    for buf in sorted(buffers, key=order):
        neighbours = {o.index: o for k in range(buf.first, buf.last + 1) for o in live[k] if o.index in offsets}
        offset = 0
        for other in sorted(neighbours.values(), key=lambda o: offsets[o.index]):
            if offset + buf.size <= offsets[other.index]:
                break
            offset = max(offset, offsets[other.index] + other.size)
        offsets[buf.index] = offset
    return offsets
