"""The Cortex-M report `compile --mcu` and `run --mcu` print: flash and RAM, instructions per image."""
from __future__ import annotations

from pathlib import Path


def mcu_report(c_target, graph, outdir: Path, x, mcu: str, name: str | None = None, profile: bool = False,
               memory=None):
    """Cross-compile, run under QEMU, print flash/RAM and instructions (with `profile`, also the
    per-layer instructions and estimated cycles of the first image); `memory`: the arena plan the
    build was generated with, when not the plain one. Returns the output."""
    from rich.console import Console
    from rich.table import Table

    from ..analysis import analyze
    from ..analysis.memory import plan_memory
    from ..backends.c_target.build import INT8

    b = c_target.build_mcu(outdir, name or graph.name, mcu)
    r = c_target.run_mcu(b, x, graph.output_shape.numel)
    a = analyze(graph)
    # the arena the build planned: the analysis' (float), or the int8 plan at one byte per element
    plain = plan_memory(graph, a.steps, elem_bytes=1) if b.dtype == INT8 else a.plan
    arena = (memory if memory is not None else plain).arena_bytes
    table = Table(title=f"{graph.name} on {b.mcu.name} (QEMU {b.mcu.machine})", title_justify="left")
    for col in ("", "bytes", "where"):
        table.add_column(col, justify="right" if col == "bytes" else "left")
    for row in c_target.size_table(b, arena, r.stack_bytes):
        table.add_row(*row)
    if memory is not None:
        table.add_row("arena, plain", f"{plain.arena_bytes:,}",
                      "RAM without in-place depthwise or patches")
        if not memory.input_in_arena:
            table.add_row("input", f"{plain.buffers[plain.buffer_of[graph.input_name]].size:,}",
                          "the caller's buffer: not in the arena nor in the RAM total (flash, or a "
                          "frame buffer kept anyway)")
        if memory.patches is not None:
            p = memory.patches
            table.add_row("mult-adds recomputed", f"{p.extra_macs:,}",
                          f"+{100 * p.extra_fraction:.2f}% ({p.grid[0]}x{p.grid[1]} tiles up to {p.output})")
    console = Console(width=max(100, Console().width))
    console.print(table)
    macs = a.macs
    for i, n in enumerate(r.instructions):
        per = f", {n / macs:.2f} per mult-add" if macs else ""
        console.print(f"image {i}: {n:,} instructions (QEMU -icount, TIMER0 ticks x {c_target.INSNS_PER_TICK}){per}")
    if profile:
        print_profile(console, graph, outdir, name or graph.name, mcu, x)
    return r.output


def print_profile(console, graph, outdir: Path, name: str, mcu: str, x, opt=None) -> None:
    """The per-layer table (QEMU plugin counts, cycles from the Cortex-M cycle table) and the class mix."""
    from ..backends.c_target import profile as prof
    from ..report import _rich_table

    b, rows = prof.layer_profile(graph, outdir, name, mcu, x, opt=opt)
    head, body = prof.profile_table(rows)
    console.print(_rich_table(f"{graph.name} on {b.mcu.name}: per layer (first image; instructions counted "
                              f"by the QEMU plugin, cycles estimated)", head, body))
    head, body = prof.type_table(rows)
    console.print(_rich_table(f"{graph.name} on {b.mcu.name}: per layer type", head, body))
    head, body = prof.class_table(rows, mcu)
    console.print(_rich_table(f"instruction classes on {b.mcu.name} (cycles: profile.CYCLES)", head, body))
    console.print(f"The cycle estimate leaves out: {prof.LEFT_OUT}.")
