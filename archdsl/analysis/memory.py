"""Activation memory: one static arena planned from tensor lifetimes.

The same plan gives `stats` its peak activation memory and the C target its arena,
so the two numbers cannot disagree. The arena holds every tensor of the fused
schedule, the network input and output included (the C API exposes pointers into
it). Element-wise steps write over their input when nothing later reads it;
reshapes (flatten, dropout) are views. Buffers are placed greedily at the lowest offset
that does not overlap a buffer alive at the same time, in the best of a few orders.

Two options go below the layer-by-layer floor (the largest input + output of one step):

- `inplace_dw`: a depthwise step (channel multiplier 1) whose input nothing later reads
  writes its output over its input, channel by channel, through a one-plane scratch buffer:
  output channel o depends only on input channel o, and its plane lands at or before input
  plane o (output planes are never larger), so no unread input is overwritten.
- `patches` (analysis.patch.PatchPlan): the schedule's first steps run tile by tile. While
  they run, the arena holds the whole network input, the whole prefix output being assembled,
  and one tile's buffers: each prefix tensor's largest tile, and crops of a stored region
  where a consumer reads less than was kept. Time k of the timeline is step k (of every tile,
  as each tile runs the same steps into the same buffers).

Sizes are in bytes from `elem_bytes` per element, so one plan serves fp32 and int8.

With `input_in_arena=False` the network input is not in the arena: the steps read it where the
caller keeps it (a camera frame, an image in flash), and nothing writes over it. The arena is then
the activations alone; the caller's buffer is RAM too unless it is in flash or needed anyway.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    what: str = ""  # the tensor, tile or scratch it holds, for reports


@dataclass
class MemoryPlan:
    buffer_of: dict[str, int]  # tensor name -> buffer index (whole tensors)
    buffers: list[Buffer]
    arena_bytes: int
    peak_live_bytes: int  # the largest set of buffers alive at once: a lower bound for any arena
    live_bytes: list[int] = field(default_factory=list)  # bytes alive at step k (index 0: the input alone)
    scratch_of: dict[str, int] = field(default_factory=dict)  # in-place depthwise step output -> its plane buffer
    tile_buffer_of: dict[str, int] = field(default_factory=dict)  # prefix tensor -> its tile buffer
    crop_buffer_of: dict[tuple[int, int], int] = field(default_factory=dict)  # (step, input) -> crop buffer
    patches: object = None  # the analysis.patch.PatchPlan planned for, if any
    elem_bytes: int = 4  # bytes per element the sizes were planned at (4: float, 1: int8)
    input_in_arena: bool = True  # False: the network input is read from the caller's buffer

    def offset(self, tensor: str) -> int:
        return self.buffers[self.buffer_of[tensor]].offset

    @property
    def peak_step(self) -> int:
        """The step at which the most bytes are alive (-1: before the first)."""
        return max(range(len(self.live_bytes)), key=lambda k: self.live_bytes[k]) - 1

    def live_at(self, k: int) -> list[Buffer]:
        return [b for b in self.buffers if b.first <= k <= b.last]


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def is_depthwise(step: Step) -> bool:
    """A depthwise step with channel multiplier 1 (also a conv with groups = channels)."""
    main = step.main
    if main.op.name not in ("conv", "conv dw"):
        return False
    x = main.in_shapes[0]
    return main.attrs.groups == x.c and main.out_shape.c == x.c and x.c > 1


def _worth_in_place(in_numel: int, out_numel: int) -> bool:
    """In place, the output keeps its input's buffer alive as long as the output lives: worth it
    when the output is about as large (stride 1, a tile's halo aside), not after a downsampling."""
    return 2 * out_numel > in_numel


class _Buffers:
    def __init__(self, elem_bytes: int):
        self.elem_bytes = elem_bytes
        self.list: list[Buffer] = []

    def new(self, numel: int, first: int, last: int, what: str) -> int:
        self.list.append(Buffer(len(self.list), _aligned(numel * self.elem_bytes), first, last, what=what))
        return len(self.list) - 1

    def fits(self, index: int, numel: int) -> bool:
        return self.list[index].size >= _aligned(numel * self.elem_bytes)

    def grow(self, index: int, numel: int) -> None:
        self.list[index].size = max(self.list[index].size, _aligned(numel * self.elem_bytes))


def plan_memory(graph: Graph, steps: list[Step] | None = None, elem_bytes: int = 4, *,
                inplace_dw: bool = False, patches=None, input_in_arena: bool = True) -> MemoryPlan:
    steps = steps if steps is not None else schedule(graph)
    plan = _plan(graph, steps, elem_bytes, inplace_dw, patches, set(), input_in_arena)
    if not inplace_dw:
        return plan
    # A downsampling depthwise in place keeps its large input buffer alive while its output
    # lives: take it only where that lowers the live bytes at its step below what it was.
    start = patches.prefix if patches is not None else 0
    live = plan.live_bytes
    taken: set[int] = set()
    for k in range(start, len(steps)):
        st = steps[k]
        src = plan.buffers[plan.buffer_of[st.inputs[0]]]
        if not (is_depthwise(st) and st.output not in plan.scratch_of and src.last == k) or (
                not input_in_arena and src.index == plan.buffer_of[graph.input_name]):
            continue
        out = plan.buffers[plan.buffer_of[st.output]]
        plane = _aligned(st.out_shape.h * st.out_shape.w * elem_bytes)
        after = [live[j + 1] + src.size - out.size for j in range(k + 1, min(out.last, len(steps) - 1) + 1)]
        if max([live[k + 1] - out.size + plane, *after]) < live[k + 1]:
            taken.add(k)
    return _plan(graph, steps, elem_bytes, inplace_dw, patches, taken, input_in_arena) if taken else plan


def _plan(graph: Graph, steps: list[Step], elem_bytes: int, inplace_dw: bool, patches,
          strided_in_place: set[int], input_in_arena: bool = True) -> MemoryPlan:
    start = patches.prefix if patches is not None else 0
    last_read: dict[str, int] = {}
    for k, st in enumerate(steps):
        for t in st.inputs:
            last_read[t] = k
    last_read[graph.output] = len(steps)  # the output outlives the run

    bufs = _Buffers(elem_bytes)
    buffers = bufs.list
    buffer_of: dict[str, int] = {}
    scratch_of: dict[str, int] = {}

    def assign(tensor: str, index: int) -> None:
        buffer_of[tensor] = index
        buffers[index].last = max(buffers[index].last, last_read.get(tensor, buffers[index].first))

    input_numel = graph.input_shape.numel if input_in_arena else 0  # else the caller's, read only
    assign(graph.input_name, bufs.new(input_numel, -1, -1, graph.input_name))
    tiles: dict[str, int] = {}
    crops: dict[tuple[int, int], int] = {}
    if patches is not None:
        _plan_tiles(bufs, graph, steps, patches, inplace_dw, tiles, crops, scratch_of)
        out = steps[start - 1]
        assign(out.output, bufs.new(out.out_shape.numel, 0, 0, out.output))
        for node in out.nodes[:-1]:
            buffer_of.setdefault(node.name, buffer_of[out.output])
    for k in range(start, len(steps)):
        st = steps[k]
        main = st.main
        src = buffer_of[st.inputs[0]]
        # buf.last is the last read of every tensor in the buffer so far: in place is safe
        # when nothing reads the buffer after this step.
        free = buffers[src].last == k and (input_in_arena or src != buffer_of[graph.input_name])
        numel = st.out_shape.numel
        if main.op.alias_input or (main.op.elementwise and free and bufs.fits(src, numel)):
            assign(st.output, src)
        elif inplace_dw and free and is_depthwise(st) and (
                k in strided_in_place or _worth_in_place(graph.shape_of(st.inputs[0]).numel, numel)):
            bufs.grow(src, numel)
            assign(st.output, src)
            scratch_of[st.output] = bufs.new(st.out_shape.h * st.out_shape.w, k, k, f"{st.output} (one plane)")
        else:
            assign(st.output, bufs.new(numel, k, k, st.output))
        for node in st.nodes[:-1]:  # names inside a fused step share its output
            buffer_of.setdefault(node.name, buffer_of[st.output])

    # Who is alive at each step, so placement only looks at buffers that overlap in time.
    live: dict[int, list[Buffer]] = {}
    for buf in buffers:
        for k in range(buf.first, buf.last + 1):
            live.setdefault(k, []).append(buf)
    live_bytes = [sum(b.size for b in live.get(k, [])) for k in range(-1, len(steps))]
    peak = max(live_bytes)

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
        if best_arena == peak:
            break
    for buf in buffers:
        buf.offset = best[buf.index]
    return MemoryPlan(buffer_of, buffers, best_arena, peak, live_bytes, scratch_of, tiles, crops, patches,
                      elem_bytes, input_in_arena)


def _plan_tiles(bufs: _Buffers, graph: Graph, steps: list[Step], patches, inplace_dw: bool,
                tiles: dict[str, int], crops: dict[tuple[int, int], int], scratch_of: dict[str, int]) -> None:
    """The buffers of one tile of the prefix (see the module doc)."""
    prefix = patches.prefix
    last_in_prefix: dict[str, int] = {steps[prefix - 1].output: prefix - 1}  # copied into the whole output
    for k in range(prefix):
        for t in steps[k].inputs:
            last_in_prefix[t] = max(last_in_prefix.get(t, -1), k)
    buffers = bufs.list
    input_buf = 0
    buffers[input_buf].last = max(buffers[input_buf].last, prefix - 1)

    def largest(tensor: str, channels: int) -> int:
        return max(s[tensor].area for s in patches.stored) * channels

    for k in range(prefix):
        st = steps[k]
        main = st.main
        # a consumer that reads less than its producer kept reads a crop (the network input, held
        # whole, is always cropped)
        for i, t in enumerate(st.inputs):
            if any(tile[k].reads[i] != patches.stored[n].get(t) for n, tile in enumerate(patches.tiles)):
                c = main.in_shapes[i].c
                size = max(tile[k].reads[i].area for tile in patches.tiles) * c
                crops[(k, i)] = bufs.new(size, k, k, f"{t} (crop for {main.name})")
        numel = largest(st.output, st.out_shape.c)
        src = crops[(k, 0)] if (k, 0) in crops else tiles.get(st.inputs[0])
        free = src is not None and buffers[src].last == k  # a crop is this step's own copy
        if src is not None and (main.op.alias_input or (main.op.elementwise and free and bufs.fits(src, numel))):
            index = src
        elif inplace_dw and free and is_depthwise(st) and all(
                tile[k].out.area <= tile[k].reads[0].area and _worth_in_place(tile[k].reads[0].area, tile[k].out.area)
                for tile in patches.tiles):
            bufs.grow(src, numel)
            index = src
            plane = max(tile[k].out.area for tile in patches.tiles)
            scratch_of[st.output] = bufs.new(plane, k, k, f"{st.output} tile (one plane)")
        else:
            index = bufs.new(numel, k, k, f"{st.output} (tile)")
        buffers[index].last = max(buffers[index].last, last_in_prefix.get(st.output, k))
        for node in st.nodes:
            tiles[node.name] = index


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
