"""Patch-based execution of a network's first stages (MCUNetV2, Lin et al. 2021).

The first stages of a small CNN hold its largest feature maps, so they set the arena. Run a
prefix of the fused schedule tile by tile instead: split the prefix's output map into a grid,
and for each tile compute every tensor of the prefix only over the region that tile needs (its
receptive field: the tile grown by each window's halo, clipped to the map). Only one tile's
buffers and the prefix's whole output are alive at once; the steps after the prefix run whole.
The price is recomputation: neighbouring tiles' halos overlap, so their mult-adds repeat.

A prefix qualifies when every step in it is spatially local (a window op -- conv, depthwise,
pooling -- or an element-wise op over maps of one size, or a concat) and nothing after it reads
a tensor made inside it except its last step's output. Regions are half-open rectangles in the
coordinates of each tensor's own map. A window op over a tile reads the clipped input region and
pads it only where that region meets the map's true border, so every padding mode (`same`,
`same_tf`, `valid`, explicit) and every stride gives the untiled values.

`choose` picks the prefix and grid that minimise the arena within a budget of extra mult-adds
(default 10% of the whole network's); `make` builds the plan for a given prefix and grid. The
memory plan (analysis.memory) turns a plan into buffers; the NumPy reference executor
(backends/numpy_patch.py) and the C target run it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ArchError
from ..ir import Graph
from ..ops.base import Window
from .schedule import Step, schedule

DEFAULT_BUDGET = 0.10  # extra mult-adds, as a fraction of the network's
MAX_GRID = 8  # tiles per side tried by `choose`


@dataclass(frozen=True)
class Rect:
    """Rows [y0, y1) and columns [x0, x1) of a map."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def area(self) -> int:
        return self.h * self.w

    def union(self, other: "Rect | None") -> "Rect":
        if other is None:
            return self
        return Rect(min(self.y0, other.y0), max(self.y1, other.y1), min(self.x0, other.x0), max(self.x1, other.x1))

    def __str__(self) -> str:
        return f"[{self.y0}:{self.y1}, {self.x0}:{self.x1}]"


@dataclass(frozen=True)
class TileStep:
    """One fused step run over one tile."""

    out: Rect  # the region of the step's output computed
    reads: tuple[Rect, ...]  # per input: the region the kernel reads (clipped to the map)
    pads: tuple[int, int, int, int]  # (top, left, bottom, right) padding of the read region (window ops)
    macs: int


@dataclass
class PatchPlan:
    prefix: int  # steps[:prefix] run tile by tile
    grid: tuple[int, int]  # tile rows x tile columns of the prefix's output map
    output: str  # the prefix's output tensor (assembled whole)
    tiles: list[list[TileStep]]  # [tile][step]
    stored: list[dict[str, Rect]]  # [tile] tensor made in the prefix -> region held in its tile buffer
    prefix_macs: int  # the prefix's mult-adds run whole
    tiled_macs: int  # ... run tile by tile
    network_macs: int

    @property
    def extra_macs(self) -> int:
        return self.tiled_macs - self.prefix_macs

    @property
    def extra_fraction(self) -> float:
        return self.extra_macs / self.network_macs if self.network_macs else 0.0

    def describe(self, steps: list[Step]) -> str:
        return f"{self.grid[0]}x{self.grid[1]} tiles up to {self.output} (the first {self.prefix} steps)"


def _at(node, ins, out, pads):
    attrs = dataclasses.replace(node.attrs, pads=pads) if isinstance(node.attrs, Window) else node.attrs
    return dataclasses.replace(node, attrs=attrs, in_shapes=ins, out_shape=out)


def tile_view(step: Step, ts: TileStep) -> Step:
    """The step at a tile's geometry: its inputs the regions it reads, its output the tile, its
    padding the tile's (only where the tile meets the map's border). Every backend runs a tile
    by lowering this view with its ordinary lowerings."""
    from ..ir import TensorShape

    main = step.main
    out = TensorShape(ts.out.h, ts.out.w, main.out_shape.c)
    ins = tuple(TensorShape(r.h, r.w, s.c) for r, s in zip(ts.reads, main.in_shapes))
    view = Step(_at(main, ins, out, ts.pads))
    for node in step.fused:
        moved = _at(node, (out,), out, (0, 0, 0, 0))
        view.fused.append(moved)
        if node is step.bn:
            view.bn = moved
        if node is step.activation:
            view.activation = moved
    return view


def _is_window(step: Step) -> bool:
    a = step.main.attrs
    return isinstance(a, Window) and a.slides


def _is_local(step: Step) -> bool:
    """Can this step be computed over part of its output map from part of its inputs?"""
    main = step.main
    if _is_window(step):
        return True
    same_maps = all((s.h, s.w) == (main.out_shape.h, main.out_shape.w) for s in main.in_shapes)
    if main.op.name == "concat":
        return same_maps
    return main.op.elementwise and same_maps


def prefixes(graph: Graph, steps: list[Step]) -> list[int]:
    """Every P for which steps[:P] can run tile by tile (see the module doc)."""
    made_at: dict[str, int] = {}
    out = []
    last_reader: dict[str, int] = {}
    for k, st in enumerate(steps):
        for t in st.inputs:
            last_reader[t] = k
    for k, st in enumerate(steps):
        if not _is_local(st):
            break
        for node in st.nodes:
            made_at[node.name] = k
        # steps[:k+1] is closed when only its last output is read later
        escaped = [t for t, at in made_at.items()
                   if at <= k and t != st.output and (last_reader.get(t, -1) > k or t == graph.output)]
        if not escaped:
            out.append(k + 1)
    return out


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    return [(i * n // parts, (i + 1) * n // parts) for i in range(parts)]


def _read_region(step: Step, i: int, out: Rect) -> tuple[Rect, tuple[int, int, int, int]]:
    """The region of input i that `out` needs (clipped to the map), and the padding it needs."""
    main = step.main
    x = main.in_shapes[i]
    if not _is_window(step):
        return out, (0, 0, 0, 0)
    (kh, kw), (sh, sw), (pt, pl, _, _) = main.attrs.kernel, main.attrs.stride, main.attrs.pads
    y0, y1 = out.y0 * sh - pt, (out.y1 - 1) * sh - pt + kh
    x0, x1 = out.x0 * sw - pl, (out.x1 - 1) * sw - pl + kw
    r = Rect(max(y0, 0), min(y1, x.h), max(x0, 0), min(x1, x.w))
    return r, (r.y0 - y0, r.x0 - x0, y1 - r.y1, x1 - r.x1)


def _step_macs(step: Step) -> int:
    return sum(n.macs for n in step.nodes)


def make(graph: Graph, steps: list[Step], prefix: int, grid: tuple[int, int]) -> PatchPlan:
    """The plan running steps[:prefix] over a rows x cols grid of the prefix's output map."""
    if prefix not in prefixes(graph, steps):
        raise ArchError(f"the first {prefix} steps cannot run tile by tile", None,
                        "a patch prefix ends before the first global pool, fc, flatten or broadcast gate, "
                        "and nothing after it may read a tensor made inside it but its last")
    last = steps[prefix - 1]
    shape = last.out_shape
    rows, cols = grid
    if not _fits(grid, shape):
        raise ArchError(f"a {rows}x{cols} grid does not fit {last.output}'s {shape.h}x{shape.w} map", None,
                        "use at least two tiles, and at most one per row and per column")
    return _make(graph, steps, prefix, grid)


def _make(graph: Graph, steps: list[Step], prefix: int, grid: tuple[int, int]) -> PatchPlan:
    """make() for a prefix and grid already known to fit."""
    last = steps[prefix - 1]
    shape = last.out_shape
    rows, cols = grid
    tiles: list[list[TileStep]] = []
    stored: list[dict[str, Rect]] = []
    tiled = 0
    # per step, once: its output, its map's area and its mult-adds (the tile loop reads them often)
    outputs = [st.output for st in steps[:prefix]]
    areas = [st.out_shape.h * st.out_shape.w for st in steps[:prefix]]
    step_macs = [_step_macs(st) for st in steps[:prefix]]
    for (y0, y1) in _split(shape.h, rows):
        for (x0, x1) in _split(shape.w, cols):
            need: dict[str, Rect] = {last.output: Rect(y0, y1, x0, x1)}
            per_step: list[TileStep | None] = [None] * prefix
            for k in range(prefix - 1, -1, -1):
                st = steps[k]
                out = need[outputs[k]]
                reads, pads = [], (0, 0, 0, 0)
                for i, t in enumerate(st.inputs):
                    r, p = _read_region(st, i, out)
                    reads.append(r)
                    pads = p if i == 0 else pads
                    need[t] = r.union(need.get(t))
                macs = step_macs[k] * out.area // areas[k]
                tiled += macs
                per_step[k] = TileStep(out, tuple(reads), pads, macs)
            tiles.append(per_step)
            stored.append({t: r for t, r in need.items() if t != graph.input_name})
    return PatchPlan(prefix, grid, last.output, tiles, stored, sum(step_macs), tiled,
                     sum(n.macs for n in graph.nodes))


def _fits(grid: tuple[int, int], shape) -> bool:
    """Whether a rows x cols grid of at least two tiles, one row and column of the map at least per tile, fits."""
    rows, cols = grid
    return 1 <= rows <= shape.h and 1 <= cols <= shape.w and rows * cols >= 2


def parse_grid(text: str) -> tuple[int, int]:
    """ROWSxCOLS, or N for NxN (whether the tiles fit a map is make's check)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        if len(parts) > 2:
            raise ValueError
        rows, cols = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise ArchError(f"--patch-grid {text!r}: expected ROWSxCOLS", None, "e.g. --patch-grid 3x3") from None
    return rows, cols


def resolve_prefix(graph: Graph, steps: list[Step], text: str) -> int:
    """A prefix given by the user: a step count, or the name of the tensor the prefix ends with."""
    if text.isdigit():
        return int(text)
    for k, st in enumerate(steps):
        if text in (st.output, st.main.name, *(n.name for n in st.nodes)) or st.main.row.name == text:
            # a row name ends the prefix at the last step of that row
            end = k
            while end + 1 < len(steps) and steps[end + 1].main.row.name == st.main.row.name == text:
                end += 1
            return end + 1
    ends = [steps[p - 1].output for p in prefixes(graph, steps)]
    raise ArchError(f"--patch-prefix {text!r}: no step of {graph.name} is called that", None,
                    "prefixes that can run tile by tile end at: " + ", ".join(ends[:12])
                    + (", ..." if len(ends) > 12 else ""))


def choose(graph: Graph, steps: list[Step] | None = None, *, elem_bytes: int = 4,
           budget: float = DEFAULT_BUDGET, input_in_arena: bool = True) -> "PatchPlan | None":
    """The prefix and grid with the smallest arena (in-place depthwise on) whose extra mult-adds
    stay within `budget` (a fraction of the network's); None when no patch plan beats running whole."""
    return _choose(graph, steps if steps is not None else schedule(graph), elem_bytes, budget,
                   input_in_arena=input_in_arena)


def _choose(graph: Graph, steps: list[Step], elem_bytes: int, budget: float, only_prefix: int | None = None,
            only_grid: tuple[int, int] | None = None, input_in_arena: bool = True) -> "PatchPlan | None":
    from .memory import _aligned, plan_memory

    whole = plan_memory(graph, steps, elem_bytes, inplace_dw=True, input_in_arena=input_in_arena)
    best_key = (whole.arena_bytes, 0)
    best_plan = None
    total = sum(n.macs for n in graph.nodes)
    ends = prefixes(graph, steps)
    if only_prefix is not None:
        if only_prefix not in ends:
            make(graph, steps, only_prefix, only_grid or (2, 2))  # raises the diagnostic
        ends = [only_prefix]
    if only_grid and ends and not any(_fits(only_grid, steps[p - 1].out_shape) for p in ends):
        # a grid no prefix's map holds: say so (make's diagnostic, on the largest map) rather than "none"
        make(graph, steps, max(ends, key=lambda p: steps[p - 1].out_shape.numel), only_grid)
    # Candidates are tried in the order of a bound below their arena (the most promising first),
    # so that the bound can skip the rest; the position in the plain order (prefix, then grid) breaks
    # ties as trying them in that order would. The bound: while the prefix runs, the whole input
    # (when the arena holds it) and the whole prefix output are alive together; after it, the buffers
    # alive are the same whatever the grid (tile buffers end with the prefix), so the first grid's
    # plan bounds the others.
    whole_input = _aligned(graph.input_shape.numel * elem_bytes) if input_in_arena else 0
    best_key = (*best_key, -1)
    bounds = {p: whole_input + _aligned(steps[p - 1].out_shape.numel * elem_bytes) for p in ends}
    for order, p in sorted(enumerate(ends), key=lambda e: bounds[e[1]]):
        shape = steps[p - 1].out_shape
        bound = bounds[p]
        grids = [only_grid] if only_grid else [(n, n) for n in range(2, MAX_GRID + 1)]
        for g, (rows, cols) in enumerate(grids):
            if bound > best_key[0]:
                break  # no grid of this prefix can do better
            if rows > shape.h or cols > shape.w:
                break
            plan = _make(graph, steps, p, (rows, cols)) if only_grid is None else make(graph, steps, p, (rows, cols))
            if plan.extra_macs > budget * total:
                break  # finer grids only recompute more
            memory = plan_memory(graph, steps, elem_bytes, inplace_dw=True, patches=plan,
                                 input_in_arena=input_in_arena)
            bound = max(bound, max(memory.live_bytes[p + 1:], default=0))
            key = (memory.arena_bytes, plan.extra_macs, order * len(grids) + g)
            if key < best_key:
                best_key, best_plan = key, plan
    return best_plan


@dataclass
class MemoryReport:
    """The arena three ways, for `stats`, `compile --mcu`, the plot and the bench."""

    elem_bytes: int
    floor_bytes: int  # the layer-by-layer floor: the largest input(s) + output of one step
    plain: object  # MemoryPlan: the arena the default C build allocates
    inplace: object  # MemoryPlan with in-place depthwise
    patched: object  # MemoryPlan with in-place depthwise and the patch plan (= inplace without one)
    patch: PatchPlan | None
    steps: list[Step]
    input_in_arena: bool = True  # False: inplace and patched read the input from the caller's buffer
    input_bytes: int = 0  # the network input's buffer (in the plain arena)

    def peak_where(self, plan=None) -> str:
        plan = plan or self.patched
        k = plan.peak_step
        live = sorted((b for b in plan.live_at(k) if b.size), key=lambda b: -b.size)
        at = "before the first step" if k < 0 else f"at step {k} ({self.steps[k].output})"
        return f"{at}: " + ", ".join(f"{b.what} {b.size:,} B" for b in live)


def floor_bytes(graph: Graph, steps: list[Step], elem_bytes: int = 4) -> int:
    """The largest input(s) + output of one step (views and in-place element-wise steps excepted),
    the floor of any layer-by-layer planner."""
    from .memory import _aligned

    pairs = [0]
    for st in steps:
        if st.main.op.alias_input:
            continue
        ins = {t: graph.shape_of(t).numel for t in st.inputs}
        out = 0 if st.main.op.elementwise and len(ins) == 1 else st.out_shape.numel
        pairs.append(sum(_aligned(n * elem_bytes) for n in ins.values()) + _aligned(out * elem_bytes))
    return max(pairs)


def memory_report(graph: Graph, *, elem_bytes: int = 4, prefix: str | None = None, grid: str | None = None,
                  budget: float = DEFAULT_BUDGET, input_in_arena: bool = True) -> MemoryReport:
    """Plain, in-place and patched plans. `prefix` / `grid` fix the patch plan (a grid alone is tried
    on every prefix, a prefix alone with every grid, both within the budget); grid 'none' turns it off.
    input_in_arena=False: the in-place and patched plans read the input from the caller's buffer
    (the plain plan is the default build's, input inside)."""
    from .memory import plan_memory

    if not 0 <= budget:
        raise ArchError(f"--recompute-budget {budget}: must be a fraction >= 0", None, "e.g. 0.10 for 10%")
    steps = schedule(graph)
    plain = plan_memory(graph, steps, elem_bytes)
    inplace = plan_memory(graph, steps, elem_bytes, inplace_dw=True, input_in_arena=input_in_arena)
    chosen = None
    if grid != "none":
        if prefix is not None and grid not in (None, "auto"):
            chosen = make(graph, steps, resolve_prefix(graph, steps, prefix), parse_grid(grid))
        else:
            chosen = _choose(graph, steps, elem_bytes, budget,
                             None if prefix is None else resolve_prefix(graph, steps, prefix),
                             None if grid in (None, "auto") else parse_grid(grid), input_in_arena)
    patched = plan_memory(graph, steps, elem_bytes, inplace_dw=True, patches=chosen,
                          input_in_arena=input_in_arena) if chosen else inplace
    return MemoryReport(elem_bytes, floor_bytes(graph, steps, elem_bytes), plain, inplace, patched, chosen, steps,
                        input_in_arena, plain.buffers[plain.buffer_of[graph.input_name]].size)
