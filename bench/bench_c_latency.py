"""Host latency of the generated C at batch 1 against ONNX Runtime and PyTorch, one thread each.

Goal: the C runtime at or below ONNX Runtime's time on MobileNetV1 1.0/224 (1 thread), and within
1.5x at 0.25/96. All engines run the same spec with the same seeded weights on the same input, on
this machine, in this run; the ratios are what to read (absolute times depend on the machine and on
what else runs on it). The outputs are compared before timing: a fast wrong answer is not reported.

    python bench/bench_c_latency.py [--spec specs/mobilenet_v1.arch] [--set alpha=0.5]
                                    [--runs 30] [--rounds 3] [--march native,x86-64-v3]
                                    [--cflags "-O3 -ffp-contract=fast"]

C: the generated files built with the host compiler, --cflags and each -march of --march (one row
each: the kernels take their AVX2 or AVX-512 path from the compiler's feature macros), timed by the
generated main.c (`--time N`: clock() around each <p>_run call, after one warm-up run). ONNX Runtime:
the generated ONNX model, intra_op_num_threads=1, default graph optimisations. PyTorch: the generated
module, torch.set_num_threads(1), inference_mode. All three are timed in CPU time (main.c's clock();
time.process_time() here: one thread each, so CPU time is the engine's own work, and time spent
descheduled by other jobs on a shared machine counts for none of them). Each engine is timed `--rounds` times, interleaved
with the others, and the best median is kept (other jobs on a shared machine only ever slow a run
down). "of peak" is an engine's mult-adds per second over one core's fp32 FMA peak, measured by
bench/fma_peak.c built with the same flags (the widest -march of the list for the other engines).
"""
from __future__ import annotations

import statistics
import subprocess
import time
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import ROOT, base_parser, run_main, seeded_network, timeit  # noqa: E402


def parse_args():
    p = base_parser(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cflags", default="-O3 -ffp-contract=fast")
    p.add_argument("--march", default="native,x86-64-v3",
                   help="comma-separated -march values, one C build each (empty: --cflags alone)")
    return p.parse_args()


def cpu_summary() -> str:
    """The CPU model and its widest vector extensions, from /proc/cpuinfo (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "CPU: unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    ext = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    return f"CPU: {model} ({', '.join(ext) or 'no AVX2'})"


def fma_peak(cc: str, flags: list[str], tmp: Path) -> float:
    """One core's fp32 FMA peak in GFMA/s for this build's flags (bench/fma_peak.c)."""
    exe = tmp / f"fma_peak{len(list(tmp.glob('fma_peak*')))}"
    subprocess.run([cc, "-O2", *[f for f in flags if f.startswith("-m")], str(ROOT / "bench" / "fma_peak.c"),
                    "-o", str(exe)], check=True, capture_output=True)
    line = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return float(dict(kv.split("=") for kv in line.split())["gflops_fma"])


def main() -> int:
    args = parse_args()
    import numpy as np

    graph, weights, x = seeded_network(args)
    from archdsl.analysis.costs import totals
    from archdsl.backends import c_target
    from archdsl.commands.targets import load_target

    marches = [m for m in args.march.split(",") if m] or [""]
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-") as tmp:
        tmp = Path(tmp)
        c_target.compile(graph, weights, tmp / "c", "net")
        builds, peaks = {}, {}
        for march in marches:
            flags = args.cflags.split() + ([f"-march={march}"] if march else [])
            name = f"C -march={march}" if march else "C (generated, gcc)"
            builds[name] = c_target.build(tmp / "c", "net", cflags=flags, exe=tmp / f"net_host{len(builds)}")
            peaks[name] = fma_peak(c_target.host_cc(), flags, tmp)
        outs_c = {name: c_target.run_exe(exe, x, graph.output_shape.numel) for name, exe in builds.items()}
        out_c = next(iter(outs_c.values()))

        def run_c(exe, n: int) -> list[float]:
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
        for name, out in (*outs_c.items(), ("torch", run_torch().reshape(out_c.shape))):
            diff = float(np.abs(out - ref).max())
            if diff > 1e-4 * float(np.abs(ref).max()) + 1e-5:
                print(f"{name}: output differs from onnxruntime's by {diff:.3g}; not timing a wrong answer")
                return 1

        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            rounds = {name: run_c(exe, args.runs) for name, exe in builds.items()}
            for name, fn in (("onnxruntime", run_ort), ("torch", run_torch)):
                t = timeit(fn, args.runs, clock=time.process_time)
                rounds[name] = [statistics.median(t), min(t)]
            for name, (med, mn) in rounds.items():
                if name not in best or med < best[name][0]:
                    best[name] = (med, min(mn, best.get(name, (med, mn))[1]))

    ort_ms = best["onnxruntime"][0]
    macs = totals(graph)["macs"]
    host_peak = max(peaks.values())
    print(f"{graph.name} {dict(graph.params)}  batch 1  input {graph.input_shape}  {macs / 1e6:.1f} M mult-adds")
    print(cpu_summary())
    print(f"C flags: {args.cflags} + -march as named; runs {args.runs} x rounds {args.rounds} (best median, min)")
    print("fp32 FMA peak (bench/fma_peak.c): " + ", ".join(f"{n.split()[-1]} {p:.1f} GFMA/s" for n, p in peaks.items()))
    print(f"{'engine':22} {'median ms':>10} {'min ms':>8} {'/ onnxruntime':>14} {'GMAC/s':>7} {'of peak':>8}")
    for name, (med, mn) in best.items():
        rate = macs / med / 1e9
        print(f"{name:22} {med * 1e3:10.2f} {mn * 1e3:8.2f} {med / ort_ms:14.2f} {rate:7.1f} "
              f"{rate / peaks.get(name, host_peak):8.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
