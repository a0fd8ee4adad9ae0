"""The Cortex-M report `compile --mcu` and `run --mcu` print: flash and RAM, instructions per image."""
from __future__ import annotations

from pathlib import Path


def mcu_report(c_target, graph, outdir: Path, x, mcu: str, name: str | None = None):
    """Cross-compile, run under QEMU, print flash/RAM and instructions; return the output."""
    from rich.console import Console
    from rich.table import Table

    from ..analysis import analyze

    b = c_target.build_mcu(outdir, name or graph.name, mcu)
    r = c_target.run_mcu(b, x, graph.output_shape.numel)
    a = analyze(graph)
    arena = a.plan.arena_bytes
    table = Table(title=f"{graph.name} on {b.mcu.name} (QEMU {b.mcu.machine})", title_justify="left")
    for col in ("", "bytes", "where"):
        table.add_column(col, justify="right" if col == "bytes" else "left")
    for row in c_target.size_table(b, arena, r.stack_bytes):
        table.add_row(*row)
    console = Console(width=max(100, Console().width))
    console.print(table)
    macs = a.macs
    for i, n in enumerate(r.instructions):
        per = f", {n / macs:.2f} per mult-add" if macs else ""
        console.print(f"image {i}: {n:,} instructions (QEMU -icount, TIMER0 ticks x {c_target.INSNS_PER_TICK}){per}")
    return r.output
