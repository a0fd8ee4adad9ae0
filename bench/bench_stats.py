"""Wall time of `archdsl stats specs/mobilenet_v1.arch` (goal: under 0.5 s).

Peers in the same run: a bare interpreter start (the floor) and `import torch`
(what the command would cost if it imported torch). Prints medians of N runs.

    python bench/bench_stats.py [N]
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    spec = str(ROOT / "specs" / "mobilenet_v1.arch")
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "archdsl stats (table)": [sys.executable, "-m", "archdsl", "stats", spec],
        "archdsl stats --format json": [sys.executable, "-m", "archdsl", "stats", spec, "--format", "json"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    results = {name: median_wall(cmd, runs) for name, cmd in cases.items()}
    base = results["python -c pass"]
    print(f"{'command':32} {'median s':>9} {'x bare python':>14}")
    for name, t in results.items():
        print(f"{name:32} {t:9.3f} {t / base:14.1f}")


if __name__ == "__main__":
    main()
