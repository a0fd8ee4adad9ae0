"""Host latency of the generated C at batch 1 against ONNX Runtime and PyTorch, one thread each.

Goal: the C runtime within 1.5x of ONNX Runtime's time on MobileNetV1 1.0/224 (1 thread).
All three engines run the same spec with the same seeded weights on the same input, on this
machine, in this run; the ratios are what to read (absolute times depend on the machine and on
what else runs on it). The outputs are compared before timing: a fast wrong answer is not reported.

    python bench/bench_c_latency.py [--spec specs/mobilenet_v1.arch] [--set alpha=0.5]
                                    [--runs 30] [--rounds 3] [--cflags "-O3 -march=native -ffp-contract=fast"]

C: the generated files built with the host compiler and --cflags, timed by the generated main.c
(`--time N`: clock() around each <p>_run call, after one warm-up run). ONNX Runtime: the generated
ONNX model, intra_op_num_threads=1, default graph optimisations. PyTorch: the generated module,
torch.set_num_threads(1), inference_mode. Each engine is timed `--rounds` times, interleaved with the
others, and the best median is kept (other jobs on a shared machine only ever slow a run down).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import ROOT, base_parser, timeit  # noqa: E402


def parse_args():
    p = base_parser(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cflags", default="-O3 -march=native -ffp-contract=fast")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from archdsl.analysis.costs import totals
    from archdsl.backends import c_target
    from archdsl.cli import load_graph
    from archdsl.commands.targets import load_target
    from archdsl.weights import init_weights

    graph = load_graph(Path(args.spec), args.sets)
    weights = init_weights(graph, seed=0)
    x = np.random.default_rng(0).standard_normal((1, *graph.input_shape.chw)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-") as tmp:
        tmp = Path(tmp)
        c_target.compile(graph, weights, tmp / "c", "net")
        exe = c_target.build(tmp / "c", "net", cflags=args.cflags.split(), exe=tmp / "net_host")
        out_c = c_target.run_exe(exe, x, graph.output_shape.numel)

        def run_c(n: int) -> list[float]:
            line = subprocess.run([str(exe), "--time", str(n)], capture_output=True, text=True, check=True).stdout
            fields = dict(kv.split("=") for kv in line.split())
            return [float(fields["median_ms"]) / 1e3, float(fields["min_ms"]) / 1e3]

        import onnxruntime as ort
        import torch

        torch.set_num_threads(1)
        ot = load_target("onnx")
        path = ot.compile(graph, weights, tmp / "onnx", "net")[0]
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
        tt = load_target("torch")
        tt.compile(graph, weights, tmp / "torch", "net")
        model = tt.load_model(tmp / "torch", "net")
        xt = torch.from_numpy(x)

        def run_torch():
            with torch.inference_mode():
                return model(xt).numpy()

        def run_ort():
            return sess.run(None, {in_name: x})[0]

        ref = run_ort().reshape(out_c.shape)
        for name, out in (("C", out_c), ("torch", run_torch().reshape(out_c.shape))):
            diff = float(np.abs(out - ref).max())
            if diff > 1e-4 * float(np.abs(ref).max()) + 1e-5:
                print(f"{name}: output differs from onnxruntime's by {diff:.3g}; not timing a wrong answer")
                return 1

        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            rounds = {"C (generated, gcc)": run_c(args.runs)}
            for name, fn in (("onnxruntime", run_ort), ("torch", run_torch)):
                t = timeit(fn, args.runs)
                rounds[name] = [statistics.median(t), min(t)]
            for name, (med, mn) in rounds.items():
                if name not in best or med < best[name][0]:
                    best[name] = (med, min(mn, best.get(name, (med, mn))[1]))

    ort_ms = best["onnxruntime"][0]
    macs = totals(graph)["macs"]
    print(f"{graph.name} {dict(graph.params)}  batch 1  input {graph.input_shape}  {macs / 1e6:.1f} M mult-adds")
    print(f"C flags: {args.cflags}; runs {args.runs} x rounds {args.rounds} (best median, min)")
    print(f"{'engine':22} {'median ms':>10} {'min ms':>8} {'/ onnxruntime':>14} {'GMAC/s':>7}")
    for name, (med, mn) in best.items():
        print(f"{name:22} {med * 1e3:10.2f} {mn * 1e3:8.2f} {med / ort_ms:14.2f} {macs / med / 1e9:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
