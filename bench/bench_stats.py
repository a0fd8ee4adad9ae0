"""Wall time of `archdsl stats specs/mobilenet_v1.arch` (goal: under 0.5 s).

Peers in the same run: a bare interpreter start (the floor) and `import torch`
(what the command would cost if it imported torch). Prints medians of N runs: wall time,
and the child's CPU time (user + system), which time spent waiting for a shared core does not
inflate.

    python bench/bench_stats.py [N]
"""
from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def medians(cmd: list[str], runs: int) -> tuple[float, float]:
    """(wall, CPU) seconds, the medians of `runs` runs."""
    walls, cpus = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), _cpu()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    spec = str(ROOT / "specs" / "mobilenet_v1.arch")
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "archdsl stats (table)": [sys.executable, "-m", "archdsl", "stats", spec],
        "archdsl stats --format json": [sys.executable, "-m", "archdsl", "stats", spec, "--format", "json"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    results = {name: medians(cmd, runs) for name, cmd in cases.items()}
    base = results["python -c pass"]
    print(f"{'command':32} {'wall s':>8} {'CPU s':>8} {'x bare python (wall)':>21}")
    for name, (wall, cpu) in results.items():
        print(f"{name:32} {wall:8.3f} {cpu:8.3f} {wall / base[0]:21.1f}")


if __name__ == "__main__":
    main()
