"""What the latency benchmarks share: their common arguments and the timing loop."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def base_parser(doc: str) -> argparse.ArgumentParser:
    """--spec, --set and --runs; each benchmark adds its own options."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--spec", default=str(ROOT / "specs" / "mobilenet_v1.arch"))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--runs", type=int, default=30)
    return p


def timeit(fn, runs: int, warmup: int = 1, clock=time.perf_counter) -> list[float]:
    """Time of `runs` calls of fn by `clock` (wall time by default), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


def seeded_network(args, batch: int = 1):
    """The spec of --spec with --set, its seeded weights (seed 0) and a seeded standard-normal input of
    `batch` images: what every engine of a benchmark runs."""
    import sys

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from archdsl.cli import load_graph
    from archdsl.weights import init_weights

    graph = load_graph(Path(args.spec), args.sets)
    weights = init_weights(graph, seed=0)
    x = np.random.default_rng(0).standard_normal((batch, *graph.input_shape.chw)).astype(np.float32)
    return graph, weights, x


def run_main(main) -> int:
    """A benchmark's exit status: archdsl's own errors (a missing weight file, a wrong spec) printed
    as their message, as the command line prints them, not as a traceback."""
    from archdsl.errors import ArchError

    try:
        return main() or 0
    except ArchError as e:
        print(e, file=sys.stderr)
        return 2
