"""Activation memory: one static arena planned from tensor lifetimes.

The same plan gives `stats` its peak activation memory and the C target its arena,
so the two numbers cannot disagree. The arena holds every tensor of the fused
schedule, the network input and output included (the C API exposes pointers into
it). Element-wise steps write over their input when nothing later reads it;
reshapes (flatten, dropout) are views. Buffers are placed greedily, largest
first, at the lowest offset that does not overlap a buffer alive at the same time.
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

    new_buffer(graph.input_name, graph.input_shape.numel, -1)
    for k, st in enumerate(steps):
        main = st.main
        src = st.inputs[0]
        src_buf = buffers[buffer_of[src]]
        reuse = main.op.alias_input or (
            main.op.elementwise and last_read.get(src, -1) == k
            and src_buf.size >= _aligned(st.out_shape.numel * elem_bytes)
            and all(last_read.get(t, -1) <= k for t, b in buffer_of.items() if b == src_buf.index))
        if reuse:
            buffer_of[st.output] = src_buf.index
        else:
            new_buffer(st.output, st.out_shape.numel, k)
        for node in st.nodes[:-1]:  # names inside a fused step share its output
            buffer_of.setdefault(node.name, buffer_of[st.output])
    for t, b in buffer_of.items():
        buf = buffers[b]
        buf.last = max(buf.last, last_read.get(t, buf.first))

    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first)):
        offset = 0
        for other in sorted((o for o in placed if o.first <= buf.last and buf.first <= o.last),
                            key=lambda o: o.offset):
            if offset + buf.size <= other.offset:
                break
            offset = max(offset, other.offset + other.size)
        buf.offset = offset
        placed.append(buf)
    arena = max((b.offset + b.size for b in buffers), default=0)
    peak = 0
    for k in range(-1, len(steps) + 1):
        peak = max(peak, sum(b.size for b in buffers if b.first <= k <= b.last))
    return MemoryPlan(buffer_of, buffers, arena, peak)
