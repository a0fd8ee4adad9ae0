"""Elaboration time of generated specs of 250 … 2,000 rows (goal: under 2 s at 2,000, linear in rows).

    python bench/bench_elaborate.py
"""
from __future__ import annotations

import time

from archdsl.analysis.costs import totals
from archdsl.elaborate import elaborate
from archdsl.syntax import parse


def generated_spec(rows: int) -> str:
    lines = ["network long(alpha = 1.0)", "input 64x64x16", "width alpha", "after conv: bn relu"]
    for i in range(rows):
        if i % 2 == 0:
            lines.append(f"conv dw / s1   3x3x16 dw   @ 64x64x16   # row {i}")
        else:
            lines.append("conv / s1      1x1x16x16   @ 64x64x16")
    return "\n".join(lines) + "\n"


def best_of(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    print(f"{'rows':>6} {'parse s':>9} {'elaborate s':>12} {'stats s':>9} {'total s':>9} {'µs/row':>8}")
    for rows in (250, 500, 1000, 2000):
        text = generated_spec(rows)
        spec = parse(text, "long.arch")
        t_parse = best_of(lambda: parse(text, "long.arch"))
        t_elab = best_of(lambda: elaborate(spec))
        graph = elaborate(spec)
        t_stats = best_of(lambda: totals(graph))
        total = t_parse + t_elab + t_stats
        print(f"{rows:6d} {t_parse:9.3f} {t_elab:12.3f} {t_stats:9.3f} {total:9.3f} {1e6 * total / rows:8.0f}")


if __name__ == "__main__":
    main()
