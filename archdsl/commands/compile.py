"""`archdsl compile`: one spec to one target's files (NumPy, PyTorch, ONNX or C)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ArchError
from .targets import compile_target, get_weights, load_target


def register(app: typer.Typer) -> None:
    from ..cli import BUDGET_HELP, INPUT_OUTSIDE_HELP, PATCH_PREFIX_HELP, SET_HELP, load_graph, user_errors

    @app.command("compile")
    @user_errors
    def compile_cmd(
        spec: Path = typer.Argument(..., help="The .arch spec file."),
        target: str = typer.Option(..., "--target", "-t", metavar="numpy|torch|onnx|c",
                                   help="What to generate: numpy (a standalone .py + .npz), torch (an nn.Module), "
                                        "onnx (a .onnx graph) or c (a C99 runtime for microcontrollers)."),
        out: Path = typer.Option(..., "--out", "-o", metavar="DIR",
                                 help="Folder to write into (created if needed). Files are written all or nothing."),
        set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE",
                                               help="Weights: .npz (keys are the IR parameter names, e.g. "
                                                    "conv3.conv.weight), a PyTorch state_dict .pt (loaded with "
                                                    "weights_only=True) or an .onnx model. Default: a seeded init."),
        seed: int = typer.Option(0, "--seed", help="Seed of the default weight init (ignored with --weights)."),
        name: Optional[str] = typer.Option(None, "--name", metavar="NAME",
                                           help="Base name of the generated files (default: the network's name)."),
        prefix: Optional[str] = typer.Option(None, "--prefix", metavar="NAME",
                                             help="C target only: prefix of the public symbols (default: NAME)."),
        mcu: Optional[str] = typer.Option(None, "--mcu", metavar="cortex-m3|cortex-m4|cortex-m7",
                                          help="C target only: also cross-compile for this Cortex-M, run it once "
                                               "under QEMU, and report flash (weights + code) and RAM (arena + "
                                               "stack)."),
        in_place_dw: bool = typer.Option(False, "--in-place-dw",
                                         help="C target only: depthwise layers write over their input through a "
                                              "one-plane buffer where that shrinks the arena."),
        patch_grid: Optional[str] = typer.Option(None, "--patch-grid", metavar="RxC|auto",
                                                 help="C target only: run the first stages tile by tile (with "
                                                      "in-place depthwise), on this grid of the prefix's output "
                                                      "map; auto picks the prefix and grid with the smallest arena. "
                                                      "`archdsl stats` shows the figures."),
        patch_prefix: Optional[str] = typer.Option(None, "--patch-prefix", metavar="STEPS|NAME",
                                                   help=PATCH_PREFIX_HELP),
        budget: float = typer.Option(0.10, "--recompute-budget", metavar="FRACTION", help=BUDGET_HELP),
        input_outside: bool = typer.Option(False, "--input-outside-arena", help="C target only: " + INPUT_OUTSIDE_HELP),
    ):
        """Compile a spec to a target. The same spec, weights and options give the same bytes.

        Examples:

          archdsl compile specs/mobilenet_v1.arch --target numpy -o build/np --set alpha=0.5

          archdsl compile specs/mobilenet_v1.arch --target c -o build/c --weights model.pt
        """
        if mcu is not None and target != "c":
            raise ArchError("--mcu applies to the C target only", None, "use --target c")
        memory_options = in_place_dw or patch_grid is not None or patch_prefix is not None or input_outside
        if memory_options and target != "c":
            raise ArchError("--in-place-dw, --patch-grid, --patch-prefix and --input-outside-arena apply to the C "
                            "target only", None, "use --target c")
        if patch_grid == "none":
            patch_grid = None
        tgt = load_target(target)
        graph = load_graph(spec, set_)
        w = get_weights(graph, weights, seed)
        memory = None
        if memory_options:
            from ..analysis.patch import memory_report
            from ..quant.weights_file import is_int8_dict

            elem_bytes = 1 if is_int8_dict(w) else 4  # an int8 build plans its arena in bytes
            rep = memory_report(graph, elem_bytes=elem_bytes, prefix=patch_prefix, grid=patch_grid or "auto",
                                budget=budget, input_in_arena=not input_outside)
            if patch_grid is not None or patch_prefix is not None:
                memory = rep.patched
            elif in_place_dw:
                memory = rep.inplace
            else:  # the input outside alone
                from ..analysis.memory import plan_memory

                memory = plan_memory(graph, rep.steps, elem_bytes, input_in_arena=False)
        written = compile_target(tgt, graph, w, out, name or graph.name, prefix, memory=memory)
        for path in written:
            typer.echo(f"wrote {path} ({Path(path).stat().st_size:,} bytes)")
        if memory is not None:
            typer.echo(arena_line(rep, memory))
        if mcu is not None:
            import numpy as np

            from .mcu import mcu_report

            zeros = np.zeros((1, *graph.input_shape.chw), np.float32)
            mcu_report(tgt, graph, out, zeros, mcu, name or graph.name, memory=memory)


def arena_line(rep, memory) -> str:
    """The arena built, against the plain one, with the recomputation it costs."""
    text = f"arena: {memory.arena_bytes:,} B (plain {rep.plain.arena_bytes:,} B"
    if not memory.input_in_arena:
        text += f"; the input, {rep.input_bytes:,} B, read from the caller's buffer"
    if memory.patches is not None:
        p = memory.patches
        text += (f"; {p.grid[0]}x{p.grid[1]} tiles up to {p.output}, {p.extra_macs:,} mult-adds recomputed "
                 f"(+{100 * p.extra_fraction:.2f}%)")
    elif rep.patch is None and memory is rep.patched:
        text += "; no patch plan beats running whole within the budget"
    return text + ")"
