"""Per-layer host latency of the generated C against ONNX Runtime's own per-node profile, one thread each.

Where bench_c_latency.py says how far the C is from ONNX Runtime, this says which layers make the
difference: each step of the C schedule (one kernel call: a conv with its folded BN and activation)
next to the ONNX nodes it covers, timed by ONNX Runtime's profiler (its fused Conv+ReLU is one node
named after the conv). Same spec, seeded weights and machine, in this run.

    python bench/bench_c_layers.py [--spec specs/mobilenet_v1.arch] [--set alpha=0.25] [--runs 50]
                                   [--march native] [--cflags "-O3 -ffp-contract=fast"]

C: the generated model built with -DARCHDSL_TRACE and bench/layer_clock.c as its main (a wall-clock
stamp after every step, median over --runs). ONNX Runtime: enable_profiling, the per-node kernel
times of --runs runs (median). Both are wall time: on a shared machine run it twice and read the
layers that differ in both runs. Ratios above 1 are layers where the C is slower.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import ROOT, base_parser, run_main, seeded_network  # noqa: E402


def parse_args():
    p = base_parser(__doc__)
    p.add_argument("--cflags", default="-O3 -ffp-contract=fast")
    p.add_argument("--march", default="native", help="the -march of the C build (empty: --cflags alone)")
    return p.parse_args()


def c_step_times(outdir: Path, cflags: list[str], runs: int) -> dict[str, float]:
    """Median microseconds per step output name, from bench/layer_clock.c."""
    from archdsl.backends import c_target

    shutil.copy(ROOT / "bench" / "layer_clock.c", outdir / "main.c")
    exe = c_target.build(outdir, "net", cflags=[*cflags, "-DARCHDSL_TRACE"], exe=outdir / "net_layers")
    out = subprocess.run([str(exe), str(runs)], capture_output=True, text=True, check=True).stdout
    times = {}
    for line in out.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split())
        times[fields["step"]] = float(fields["median_us"])
    return times


def ort_node_times(model_path: Path, x, runs: int, tmp: Path) -> dict[str, float]:
    """Median microseconds per ONNX node name over `runs` profiled runs (after one warm-up)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp / "ort_profile")
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(runs + 1):
        sess.run(None, {name: x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = defaultdict(list)  # per ORT node, one entry per run
    owner: dict[str, str] = {}  # ORT node -> the archdsl node (or group) it computes
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            node = node[: -len("_nchwc")] if node.endswith("_nchwc") else node
            node = node.split("/")[0]  # an archdsl node written as several ONNX nodes: fc1/flat, fc1/gemm
            if ev.get("args", {}).get("op_name", "").startswith("Reorder"):
                node = "(layout reorders)"  # NCHW <-> NCHWc conversions ORT inserts
            per_node[ev["name"]].append(float(ev["dur"]))
            owner[ev["name"]] = node
    times: dict[str, float] = defaultdict(float)
    for ort_node, d in per_node.items():  # the first run is the warm-up
        times[owner[ort_node]] += statistics.median(d[1:] if len(d) > 1 else d) * (len(d) // (runs + 1) or 1)
    return dict(times)


def describe(step) -> str:
    from archdsl.ops.conv import ConvAttrs

    n = step.main
    a, x, y = n.attrs, n.in_shapes[0], n.out_shape
    if isinstance(a, ConvAttrs):
        (kh, kw), (sh, _) = a.kernel, a.stride
        kind = "dw" if a.groups == x.c and x.c > 1 else ("pw" if (kh, kw) == (1, 1) else "conv")
        return f"{kind} {kh}x{kw}/{sh} {x.c}->{y.c} {x.h}x{x.w}"
    return f"{n.op.name} {x.c}x{x.h}x{x.w}"


def main() -> int:
    args = parse_args()
    graph, weights, x = seeded_network(args)
    from archdsl.analysis import analyze
    from archdsl.backends import c_target
    from archdsl.commands.targets import load_target

    cflags = args.cflags.split() + ([f"-march={args.march}"] if args.march else [])
    steps = analyze(graph).steps
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-") as tmp:
        tmp = Path(tmp)
        c_target.compile(graph, weights, tmp / "c", "net")
        c_us = c_step_times(tmp / "c", cflags, args.runs)
        onnx_path = load_target("onnx").compile(graph, weights, tmp / "onnx", "net")[0]
        o_us = ort_node_times(onnx_path, x, args.runs, tmp)

    print(f"{graph.name} {dict(graph.params)}  C flags: {' '.join(cflags)}  runs {args.runs} (median us, wall time)")
    print(f"{'step':14} {'layer':28} {'MMAC':>7} {'C us':>8} {'ORT us':>8} {'C/ORT':>6} {'C GMAC/s':>9}")
    tot_c = tot_o = 0.0
    for step in steps:
        c = c_us.get(step.output)
        o = sum(o_us.get(n.name, 0.0) for n in step.nodes)
        macs = sum(n.macs for n in step.nodes) if hasattr(step.main, "macs") else 0
        if c is None:
            continue
        tot_c += c
        tot_o += o
        ratio = f"{c / o:6.2f}" if o > 0 else "     -"
        rate = f"{macs / c / 1e3:9.1f}" if c > 0 and macs else "        -"
        print(f"{step.output:14} {describe(step):28} {macs / 1e6:7.2f} {c:8.1f} {o:8.1f} {ratio} {rate}")
    if "(layout reorders)" in o_us:
        tot_o += o_us["(layout reorders)"]
        print(f"{'':14} {'ORT layout reorders':28} {'':7} {'':8} {o_us['(layout reorders)']:8.1f}")
    print(f"{'total':14} {'':28} {'':7} {tot_c:8.1f} {tot_o:8.1f} {tot_c / tot_o if tot_o else 0:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
