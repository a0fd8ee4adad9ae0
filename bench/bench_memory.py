"""Arena below the layer-by-layer floor: in-place depthwise and patch-based first stages.

For every spec in specs/ at its defaults, MobileNetV2 0.35 at 96x96 and VWW: the layer-by-layer
floor (the largest input + output of one step), the plain arena (what the C build allocates by
default), the arena with in-place depthwise, with in-place depthwise and the chosen patch plan
(within the recomputation budget) and the recomputed mult-adds; then the same with the input read
from the caller's buffer (compile --input-outside-arena), and where that plan's peak is.
Sizes at 4 bytes per element (fp32) and at 1 (the int8 build, whose arena is this plan in bytes:
tests/test_int8_patches.py checks the C build's .bss against it).

    python bench/bench_memory.py [--budget 0.10] [--markdown]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.analysis.patch import memory_report  # noqa: E402
from archdsl.elaborate import elaborate  # noqa: E402
from archdsl.syntax import parse  # noqa: E402

CASES = [(p.name, {}) for p in sorted((ROOT / "specs").glob("*.arch"))]
CASES.insert(CASES.index(("mobilenet_v2.arch", {})) + 1, ("mobilenet_v2.arch", {"alpha": 0.35, "rho": 96 / 224}))


def _extra(p) -> str:
    return f"{100 * p.extra_fraction:.2f}%" if p else "-"


def _plan(p) -> str:
    return f"{p.grid[0]}x{p.grid[1]} up to {p.output}" if p else "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=0.10, help="extra mult-adds allowed (fraction)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    head = ["spec", "input", "dtype", "floor", "plain arena", "in-place dw", "patched arena", "vs floor",
            "extra mult-adds", "plan", "input outside: arena", "extra mult-adds", "plan", "remaining peak"]
    rows = []
    start = time.perf_counter()
    for name, sets in CASES:
        path = ROOT / "specs" / name
        graph = elaborate(parse(path.read_text(encoding="utf-8"), str(path)), sets)
        label = name.removesuffix(".arch") + "".join(f" {k}={v:.4g}" for k, v in sets.items())
        for elem in (4, 1):
            rep = memory_report(graph, elem_bytes=elem, budget=args.budget)
            out = memory_report(graph, elem_bytes=elem, budget=args.budget, input_in_arena=False)
            p, q = rep.patch, out.patch
            rows.append([label, str(graph.input_shape), {4: "fp32", 1: "int8"}[elem], f"{rep.floor_bytes:,}",
                         f"{rep.plain.arena_bytes:,}", f"{rep.inplace.arena_bytes:,}",
                         f"{rep.patched.arena_bytes:,}", f"{rep.patched.arena_bytes / rep.floor_bytes:.2f}x",
                         _extra(p), _plan(p), f"{out.patched.arena_bytes:,}", _extra(q), _plan(q),
                         out.peak_where()])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if h in ("spec", "dtype", "plan", "remaining peak") else "---:" for h in head) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"\n(budget {args.budget:.0%} extra mult-adds; planned in {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
