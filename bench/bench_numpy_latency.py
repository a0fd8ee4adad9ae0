"""Latency of the generated NumPy runtime against PyTorch and ONNX Runtime, one thread each.

Goal: the NumPy runtime within 2x of PyTorch (1 thread) at batch 1 on MobileNetV1 1.0/224.
Every engine runs the same spec with the same seeded weights on the same input, in the
same process, one after the other; the ratios are what to read (absolute times depend
on the machine and on what else runs on it). Outputs are checked against each other
before timing, so a fast wrong answer is not reported.

    python bench/bench_numpy_latency.py [--spec specs/mobilenet_v1.arch] [--set alpha=0.5]
                                        [--batch 1] [--runs 30] [--blas-threads 1]

Peers: the generated PyTorch module (archdsl's torch target; a torch.nn.functional
forward written here when that target is missing) with torch.set_num_threads(1), and
the generated ONNX model in ONNX Runtime with intra_op_num_threads=1. NumPy's BLAS is
limited to --blas-threads (default 1) through the environment, before NumPy loads. Times are CPU
time (time.process_time(): with one thread each, an engine's own work; time spent descheduled by
other jobs on a shared machine counts for none of them).
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import ROOT, base_parser, seeded_network, timeit  # noqa: E402


def parse_args():
    p = base_parser(__doc__)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--blas-threads", type=int, default=1)
    return p.parse_args()


def torch_functional(graph, weights):
    """A plain torch.nn.functional forward (unfused), for when the torch target is not there."""
    import torch
    import torch.nn.functional as F

    w = {k: torch.from_numpy(v) for k, v in weights.items()}

    def pad(x, a, value=0.0):
        t, l, b, r = a.pads
        return F.pad(x, (l, r, t, b), value=value) if any(a.pads) else x

    def avg(n, x):
        a = n.attrs
        if not any(a.pads):
            return F.avg_pool2d(x, a.kernel, a.stride)
        k = a.kernel[0] * a.kernel[1]
        ones = torch.ones_like(x[:1, :1])
        return F.avg_pool2d(pad(x, a), a.kernel, a.stride) * k / (
            F.avg_pool2d(pad(ones, a), a.kernel, a.stride) * k)

    table = {
        "conv": lambda n, xs: F.conv2d(pad(xs[0], n.attrs), w[n.param_key("weight")], w.get(n.param_key("bias")),
                                       n.attrs.stride, groups=n.attrs.groups),
        "bn": lambda n, xs: F.batch_norm(xs[0], w[n.param_key("running_mean")], w[n.param_key("running_var")],
                                         w[n.param_key("weight")], w[n.param_key("bias")], False, 0.0,
                                         n.attrs.eps),
        "fc": lambda n, xs: F.linear(xs[0].flatten(1), w[n.param_key("weight")],
                                     w.get(n.param_key("bias")))[:, :, None, None],
        "avg pool": avg, "global avg pool": avg,
        "max pool": lambda n, xs: F.max_pool2d(pad(xs[0], n.attrs, float("-inf")), n.attrs.kernel,
                                               n.attrs.stride),
        "relu": lambda n, xs: F.relu(xs[0]), "relu6": lambda n, xs: F.relu6(xs[0]),
        "sigmoid": lambda n, xs: torch.sigmoid(xs[0]), "hsigmoid": lambda n, xs: F.hardsigmoid(xs[0]),
        "hswish": lambda n, xs: F.hardswish(xs[0]), "softmax": lambda n, xs: F.softmax(xs[0], 1),
        "add": lambda n, xs: xs[0] + xs[1], "mul": lambda n, xs: xs[0] * xs[1],
        "concat": lambda n, xs: torch.cat(xs, 1), "flatten": lambda n, xs: xs[0].flatten(1)[:, :, None, None],
        "dropout": lambda n, xs: xs[0],
    }
    table["conv dw"] = table["conv"]
    table["global max pool"] = table["max pool"]

    def forward(x):
        env = {graph.input_name: x}
        for n in graph.nodes:
            env[n.name] = table[n.op.name](n, [env[t] for t in n.inputs])
        return env[graph.output]

    return forward


def main() -> int:
    args = parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.blas_threads)  # before numpy loads its BLAS
    import numpy as np

    graph, weights, x = seeded_network(args, args.batch)
    from archdsl.backends import numpy_target
    from archdsl.commands.targets import load_target
    from archdsl.errors import ArchError

    engines: dict[str, tuple[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="archdsl-bench-") as tmp:
        numpy_target.compile(graph, weights, Path(tmp) / "np", "net")
        np_module = numpy_target.load_module(Path(tmp) / "np", "net")
        engines["numpy (generated)"] = (f"BLAS threads {args.blas_threads}", lambda: np_module.run(x))

        import torch

        torch.set_num_threads(1)
        xt = torch.from_numpy(x)
        try:
            tt = load_target("torch")
            tt.compile(graph, weights, Path(tmp) / "torch", "net")
            model = tt.load_model(Path(tmp) / "torch", "net")
            label = "torch (generated module)"
        except (ArchError, AttributeError):
            model, label = torch_functional(graph, weights), "torch (functional, in bench)"

        def run_torch():
            with torch.inference_mode():
                return model(xt).numpy()

        engines[label] = ("torch.set_num_threads(1)", run_torch)

        try:
            import onnxruntime as ort

            ot = load_target("onnx")
            path = ot.compile(graph, weights, Path(tmp) / "onnx", "net")[0]
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            in_name = sess.get_inputs()[0].name
            engines["onnxruntime (generated)"] = ("intra_op_num_threads=1", lambda: sess.run(None, {in_name: x})[0])
        except (ArchError, ImportError) as e:
            print(f"onnxruntime: skipped ({e})")

        ref = np_module.run(x)
        for name, (_, fn) in engines.items():
            diff = float(np.abs(np.asarray(fn()).reshape(ref.shape) - ref).max())
            if diff > 1e-4 * float(np.abs(ref).max()) + 1e-5:
                print(f"{name}: output differs from the numpy runtime by {diff:.3g}; not timing a wrong answer")
                return 1

        results = {}
        for name, (_, fn) in engines.items():
            times = timeit(fn, args.runs, args.warmup, clock=time.process_time)
            results[name] = (statistics.median(times), min(times))

    torch_ms = next(v[0] for k, v in results.items() if k.startswith("torch"))
    print(f"{graph.name} {dict(graph.params)}  batch {args.batch}  input {graph.input_shape}  "
          f"runs {args.runs} (median, min)")
    print(f"{'engine':28} {'threads':26} {'median ms':>10} {'min ms':>8} {'/ torch':>8}")
    for name, (med, best) in results.items():
        print(f"{name:28} {engines[name][0]:26} {med * 1e3:10.2f} {best * 1e3:8.2f} {med / torch_ms:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
