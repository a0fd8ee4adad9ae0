"""The C of patch-based execution (analysis.patch): the prefix's steps once per tile, each lowered
by the ordinary lowerings (float or int8) on a view of the step at the tile's shapes and padding
(analysis.patch.tile_view), its tensors in tile buffers; crops where a step reads less than its
producer kept, and a paste of each tile of the prefix's output into the whole map."""
from __future__ import annotations

from typing import Callable

from ...analysis.schedule import Step
from ..codetext import c_comment
from .lowering import Emitter, _call

def tile_calls(e: Emitter, graph, steps: list[Step], plan, buffer_expr, lower: Callable[[int, object], list[str]],
               elem: str = "float") -> list[dict]:
    """The call blocks (as generate renders them) of the prefix, tile by tile, then the block that
    names the assembled prefix output. lower(k, tile step) gives the lines of step k on a tile."""
    patches = plan.patches
    last = steps[patches.prefix - 1]
    whole = last.out_shape
    size = f"sizeof({elem})"  # rt_tile.c moves rows of bytes, for float and int8 builds alike
    e.use("rt_tile.c")
    blocks = []
    for n, (tile, stored) in enumerate(zip(patches.tiles, patches.stored)):
        r = tile[-1].out
        lines: list[str] = []
        for k, (st, ts) in enumerate(zip(steps[:patches.prefix], tile)):
            where = {}
            for i, (t, read) in enumerate(zip(st.inputs, ts.reads)):
                src = e.t(t) if t == graph.input_name else buffer_expr(plan.tile_buffer_of[t])
                if (k, i) in plan.crop_buffer_of:
                    held = stored.get(t) or _whole(graph.shape_of(t))
                    crop = buffer_expr(plan.crop_buffer_of[(k, i)])
                    lines.append(_call("arch_crop", src, size, st.main.in_shapes[i].c, held.h, held.w,
                                       read.y0 - held.y0, read.x0 - held.x0, read.h, read.w, crop))
                    src = crop
                where[t] = src
            where[st.output] = buffer_expr(plan.tile_buffer_of[st.output])
            if st.output in plan.scratch_of:
                e.scratch[st.output] = buffer_expr(plan.scratch_of[st.output])
            e.where = where
            lines.append(f"/* {c_comment(st.output)}: {ts.out.h}x{ts.out.w} of {st.out_shape} */")
            lines += lower(k, ts)
            e.where = {}
        lines.append(_call("arch_paste", buffer_expr(plan.tile_buffer_of[last.output]), size, whole.c, r.h, r.w,
                           e.t(last.output), whole.h, whole.w, r.y0, r.x0))
        blocks.append({"comment": (f"tile {n + 1} of {len(patches.tiles)}: rows {r.y0}-{r.y1 - 1}, "
                                   f"columns {r.x0}-{r.x1 - 1} of {last.output} ({whole})"),
                       "lines": lines, "output": None, "out_macro": None, "out_shape": None})
    blocks.append({"comment": f"{last.output}: assembled from {len(patches.tiles)} tiles",
                   "lines": [], "output": last.output, "out_macro": e.t(last.output), "out_shape": last.out_shape})
    return blocks


def _whole(shape):
    from ...analysis.patch import Rect

    return Rect(0, shape.h, 0, shape.w)
