"""The reference meaning of patch-based execution (analysis.patch): the network run with its
first steps tile by tile, in float64 with the REFERENCE table, to compare with the untiled
`reference_forward`; and in int8 with the int8 reference kernels (archdsl.quant.runtime), to
compare value for value with the untiled `run_int8`.

Each tile runs the prefix's fused steps over that tile's regions: a window op reads the clipped
region of its input that the plan names and pads it where the region meets the map's border
(the plan's per-tile padding replaces the op's own); element-wise ops run over the region. The
tile of the prefix's output is pasted into the whole map; the steps after the prefix run whole.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from .common import lowering_for
from .numpy_target import REFERENCE, check_input


def _reference(node):
    return lowering_for(REFERENCE, node.op, "numpy reference", node.name)


def _slice(x: np.ndarray, stored, read) -> np.ndarray:
    """The `read` region of an array that holds region `stored` of its map."""
    return x[:, :, read.y0 - stored.y0:read.y1 - stored.y0, read.x0 - stored.x0:read.x1 - stored.x0]


def patched_forward(graph: Graph, weights: dict, x, plan, steps=None) -> np.ndarray:
    """The network's output (float32) with steps[:plan.prefix] run tile by tile."""
    from ..analysis.patch import Rect, tile_view
    from ..analysis.schedule import schedule

    steps = steps if steps is not None else schedule(graph)
    x = check_input(graph, x).astype(np.float64)
    whole_input = Rect(0, graph.input_shape.h, 0, graph.input_shape.w)
    last = steps[plan.prefix - 1]
    out = np.zeros((x.shape[0], *last.out_shape.chw))
    for tile, stored in zip(plan.tiles, plan.stored):
        held = {graph.input_name: (x, whole_input)}
        for st, ts in zip(steps[:plan.prefix], tile):
            xs = [_slice(held[t][0], held[t][1], r) for t, r in zip(st.inputs, ts.reads)]
            view = tile_view(st, ts)
            y = _reference(view.main)(view.main, weights, xs)
            for node in view.fused:
                y = _reference(node)(node, weights, [y])
            if y.shape[2:] != (ts.out.h, ts.out.w):
                raise AssertionError(f"{st.main.name}: tile {ts.out} computed as {y.shape[2:]}")
            held[st.output] = (y, ts.out)
            assert stored[st.output] == ts.out
        r = tile[-1].out
        out[:, :, r.y0:r.y1, r.x0:r.x1] = held[last.output][0]
    env = {graph.input_name: x, last.output: out}
    for st in steps[plan.prefix:]:
        for node in st.nodes:
            env[node.name] = _reference(node)(node, weights, [env[t] for t in node.inputs])
    return env[graph.output].astype(np.float32)


def patched_run_int8(net, q, plan, fc_requant: str = "tflm", keep: bool = False):
    """run_int8 (archdsl.quant.runtime) with net.steps[:plan.prefix] run tile by tile: each tile
    calls the same int8 kernels with the layer's parameters on the regions the plan names.
    (int8 output, {tensor: int8}) -- with keep=True the prefix output and every later step's."""
    from ..analysis.patch import Rect
    from ..quant.runtime import _run_step, check_int8_input, run_int8

    graph = net.graph
    q = check_int8_input(net, q)
    whole_input = Rect(0, graph.input_shape.h, 0, graph.input_shape.w)
    last = net.steps[plan.prefix - 1]
    out = np.zeros((q.shape[0], *last.out_shape.chw), np.int8)
    for tile in plan.tiles:
        held = {graph.input_name: (q, whole_input)}
        for qs, ts in zip(net.steps[:plan.prefix], tile):
            xs = [_slice(held[t][0], held[t][1], r) for t, r in zip(qs.inputs, ts.reads)]
            y = _run_step(qs.at_tile(ts), xs, fc_requant)
            if y.shape[2:] != (ts.out.h, ts.out.w):
                raise AssertionError(f"{qs.main.name}: tile {ts.out} computed as {y.shape[2:]}")
            held[qs.output] = (y, ts.out)
        r = tile[-1].out
        out[:, :, r.y0:r.y1, r.x0:r.x1] = held[last.output][0]
    return run_int8(net, q, fc_requant, keep=keep, resume=({graph.input_name: q, last.output: out}, plan.prefix))
