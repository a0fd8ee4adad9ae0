"""The C runtime on Cortex-M under QEMU: instructions per inference and per mult-add, flash and RAM,
and the planned arena against lower bounds.

    python bench/bench_c_mcu.py [--spec specs/mobilenet_v1.arch] [--set alpha=0.25 --set rho=96/224 ...]
                                [--opt "-O2 ..." --opt "-O3 ..."] [--weights FILE]

With --weights an int8 weight file (archdsl import of an int8 .tflite, or archdsl quantize), the
int8 runtime is measured, e.g. the portable int8 kernels on the MLPerf Tiny VWW model:

    archdsl import specs/vww_mobilenet_v1.arch ../shared/models/vww/vww_96_int8.tflite -o vww_int8.npz
    python bench/bench_c_mcu.py --spec specs/vww_mobilenet_v1.arch --set classes=2 --weights vww_int8.npz

Instructions: the generated harness reads CMSDK TIMER0 (25 MHz) around <p>_invoke(); QEMU runs with
-icount shift=0, one guest instruction per virtual nanosecond, so instructions = 40 x ticks
(resolution 40). These are instruction counts, not cycles: QEMU models no pipeline, cache or flash
wait states. Each --opt is one set of optimisation flags for the model and kernels (default: the
target's MCU_OPT, -O3 -ffp-contract=fast, and plain -O2 for comparison).

Per layer: for the Cortex-M4 and M7 at the target's MCU_OPT, the tables of `archdsl run --mcu M
--profile`: executed instructions per step counted by the project's QEMU plugin and cycles
estimated with the Cortex-M4/M7 cycle table of archdsl/backends/c_target/profile.py (see there for
what the estimate leaves out), then the same summed per layer type (first conv, depthwise, 1x1, fc,
pool: the rows of CMSIS-NN's figures in issue 13). The Cortex-M3 (no DSP extension: the int8
kernels' portable path) gets the instruction count only. --no-profile skips it.

Arena: plan_memory's arena (the #define; what `stats` reports), the largest set of tensors alive at
once (a lower bound for any plan of this schedule), and the largest input + output of one step (the
lower bound of the brief for sequential networks), for every spec at its defaults.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from _timing import run_main  # noqa: E402  (this folder is on the path when run as a script)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "mobilenet_v1.arch"))
    p.add_argument("--set", dest="sets", action="append", default=None, metavar="NAME=VALUE")
    p.add_argument("--opt", action="append", default=None, metavar="FLAGS")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the per-layer profile")
    p.add_argument("--weights", type=Path, default=None, help="weights (float, or an int8 weight file)")
    return p.parse_args()


def arena_table() -> None:
    from archdsl.analysis.memory import ALIGN, plan_memory
    from archdsl.analysis.schedule import schedule
    from archdsl.cli import load_graph

    def aligned(n):
        return (n * 4 + ALIGN - 1) // ALIGN * ALIGN

    print(f"\n{'spec (defaults)':34} {'arena B':>12} {'peak live B':>12} {'max in+out B':>13} {'arena/in+out':>13}")
    for spec in sorted((ROOT / "specs").glob("*.arch")):
        g = load_graph(spec, [])
        steps = schedule(g)
        plan = plan_memory(g, steps)
        pair = max(sum(aligned(g.shape_of(t).numel) for t in set(st.inputs)) + aligned(st.out_shape.numel)
                   for st in steps)
        print(f"{spec.stem:34} {plan.arena_bytes:12,} {plan.peak_live_bytes:12,} {pair:13,} "
              f"{plan.arena_bytes / pair:13.3f}")


def main() -> int:
    args = parse_args()
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from archdsl.analysis.costs import totals
    from archdsl.analysis.memory import plan_memory
    from archdsl.backends import c_target
    from archdsl.cli import load_graph
    from archdsl.commands.targets import get_weights
    from archdsl.quant.weights_file import is_int8_dict

    why = c_target.mcu_unavailable()
    if why:
        print(f"skipped: {why}")
        arena_table()
        return 0
    sets = args.sets if args.sets is not None else ["alpha=0.25", "rho=96/224", "classes=2"]
    opts = [o.split() for o in args.opt] if args.opt else [c_target.MCU_OPT,
                                                           ["-O2", "-ffunction-sections", "-fdata-sections"]]
    graph = load_graph(Path(args.spec), sets)
    macs = totals(graph)["macs"]
    weights = get_weights(graph, args.weights, 0)
    arena = plan_memory(graph, elem_bytes=1 if is_int8_dict(weights) else 4).arena_bytes
    x = np.random.default_rng(0).standard_normal((1, *graph.input_shape.chw)).astype(np.float32)
    print(f"{graph.name} {dict(graph.params)}  input {graph.input_shape}  {macs:,} mult-adds  arena {arena:,} B")
    print(f"{'mcu':10} {'flags':44} {'instructions':>13} {'per MAC':>8} {'weights B':>10} {'code B':>7} "
          f"{'stack B':>8} {'qemu s':>7}")
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-mcu-") as tmp:
        c_target.compile(graph, weights, Path(tmp), "net")
        for mcu in c_target.MCUS:
            for opt in opts:
                b = c_target.build_mcu(Path(tmp), "net", mcu, opt=opt)
                t0 = time.perf_counter()
                r = c_target.run_mcu(b, x, graph.output_shape.numel)
                wall = time.perf_counter() - t0
                n = r.instructions[0]
                print(f"{mcu:10} {' '.join(opt):44} {n:13,} {n / macs:8.2f} {b.weights_bytes:10,} "
                      f"{b.code_bytes:7,} {r.stack_bytes:8,} {wall:7.2f}")
        if args.profile:
            from rich.console import Console

            from archdsl.commands.mcu import print_profile

            from archdsl.backends.c_target.profile import MCU_COLUMN

            for mcu in MCU_COLUMN:  # the MCUs with a cycle table (M4, M7)
                print_profile(Console(width=120), graph, Path(tmp), "net", mcu, x)
    arena_table()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
