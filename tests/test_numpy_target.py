"""The NumPy target: the reference semantics (reference_forward) and the generated runtime,
both checked against an independent reference written here with torch.nn.functional
(float64, unfused, node by node) on the same weights.

Cases: every spec in specs/ at a reduced size (α = 0.25 and the smallest ρ that
elaborates, where the spec has them), plus inline specs that between them use every op.
"""
from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_OPS as SHARED_ALL_OPS, all_specs, load_graph, parse_text, small_graph

from archdsl import ops
from archdsl.analysis.schedule import schedule
from archdsl.backends import numpy_target as T
from archdsl.errors import ArchError
from archdsl.weights import init_weights

torch.set_num_threads(1)

# Every op: asymmetric padding (same_tf on even and odd sizes), a depthwise channel
# multiplier, a grouped conv, an avg pool with padding (not counted), a BN that cannot fold
# (after an add), residual, squeeze-and-excitation, concat, both global pools, dropout.
ALL_OPS = """\
network allops(alpha = 1.0, classes = 10)
input 17x15x3
width alpha
conv / s2        3x3x3x8        bias=yes
bn
relu6
max pool / s2    3x3            pad=same_tf
conv dw / s1     5x5x8 dw       multiplier=2 pad=same
bn
hswish
residual {
  conv / s1      1x1x16x16
  bn
  dropout        p=0.2
}
bn
relu
scale {
  global avg pool
  conv / s1      1x1x16x4       bias=yes
  relu
  conv / s1      1x1x4x16       bias=yes
  hsigmoid
}
concat {
  branch {
    conv / s1    3x3x16x8       pad=valid
    sigmoid
  }
  branch {
    avg pool / s1  3x3          pad=valid
  }
}
conv / s1        3x3x24x12      groups=4 pad=1
bn
avg pool / s2    2x2            pad=same_tf
residual {
  avg pool / s1  3x3            pad=1
}
dropout          p=0.2
flatten
fc / s1          {in.c}x{classes}
softmax
"""

# fc on a map larger than 1x1 (C, H, W order), softmax over the channels of a map,
# a strided conv with stride 2 and same_tf on an even size, a global max pool, an fc
# followed by BN (folds into the fc).
MAPS = """\
network maps()
input 12x10x4
conv / s2        3x3x4x6        pad=same_tf
relu
avg pool / s2    3x3            pad=same_tf
softmax
fc               54x12          bias=no
bn
sigmoid
conv dw / s1     1x1x12 dw
global max pool
"""

INLINE = {"allops": ALL_OPS, "maps": MAPS, "shared": SHARED_ALL_OPS}



CASES = sorted(INLINE) + [p.name for p in all_specs()]
_GRAPHS: dict = {}


def graph_for(case: str):
    if case not in _GRAPHS:
        _GRAPHS[case] = parse_text(INLINE[case]) if case in INLINE else small_graph(all_specs()[0].parent / case)
    return _GRAPHS[case]


def batch(graph, n: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, *graph.input_shape.chw)) * scale
    return x.astype(np.float32)


def within(out, ref, what: str, scale: float | None = None) -> None:
    """The scale-aware tolerance of docs/targets.md (float32 result vs a float64 reference):
    |out - ref| <= 1e-4*scale + 1e-5 + 1e-3*|ref|, scale = max|ref| unless given."""
    out = np.asarray(out, dtype=np.float64).reshape(np.shape(ref))
    ref = np.asarray(ref, dtype=np.float64)
    atol = 1e-4 * (np.abs(ref).max() if scale is None else scale) + 1e-5
    diff = np.abs(out - ref)
    bad = ~(diff <= atol + 1e-3 * np.abs(ref))
    assert not bad.any(), (f"{what}: max abs diff {diff.max():.3g} (tolerance {atol:.3g} + 1e-3*|ref|), "
                           f"first bad index {np.argwhere(bad)[0].tolist()}")


def scale_of(graph, expected: dict, name: str) -> float:
    """max|ref| over a node's output and its inputs: rounding error inherited from a large input
    survives a clipping activation or a softmax that bounds the output."""
    return max(float(np.abs(expected[t]).max()) for t in (name, *graph.node(name).inputs))


# ---------------------------------------------------------------- independent reference (torch)


def _t(weights, node, local):
    return torch.from_numpy(np.asarray(weights[node.param_key(local)], dtype=np.float64))


def _tpad(x, attrs, value=0.0):
    t, l, b, r = attrs.pads
    return F.pad(x, (l, r, t, b), value=value)


def _tconv(node, w, xs):
    a = node.attrs
    bias = _t(w, node, "bias") if "bias" in node.params else None
    return F.conv2d(_tpad(xs[0], a), _t(w, node, "weight"), bias, stride=a.stride, groups=a.groups)


def _tavg(node, w, xs):
    a = node.attrs
    k = a.kernel
    total = F.avg_pool2d(_tpad(xs[0], a), k, a.stride) * (k[0] * k[1])
    ones = torch.ones_like(xs[0][:1, :1])
    count = F.avg_pool2d(_tpad(ones, a), k, a.stride) * (k[0] * k[1])
    return total / count


def _tmax(node, w, xs):
    a = node.attrs
    return F.max_pool2d(_tpad(xs[0], a, float("-inf")), a.kernel, a.stride)


def _tfc(node, w, xs):
    bias = _t(w, node, "bias") if "bias" in node.params else None
    return F.linear(xs[0].flatten(1), _t(w, node, "weight"), bias)[:, :, None, None]


def _tbn(node, w, xs):
    return F.batch_norm(xs[0], _t(w, node, "running_mean"), _t(w, node, "running_var"), _t(w, node, "weight"),
                        _t(w, node, "bias"), training=False, eps=node.attrs.eps)


TORCH = {
    "conv": _tconv,
    "conv dw": _tconv,
    "fc": _tfc,
    "bn": _tbn,
    "avg pool": _tavg,
    "global avg pool": _tavg,
    "max pool": _tmax,
    "global max pool": _tmax,
    "relu": lambda n, w, xs: F.relu(xs[0]),
    "relu6": lambda n, w, xs: F.relu6(xs[0]),
    "sigmoid": lambda n, w, xs: torch.sigmoid(xs[0]),
    "hsigmoid": lambda n, w, xs: F.hardsigmoid(xs[0]),
    "hswish": lambda n, w, xs: F.hardswish(xs[0]),
    "silu": lambda n, w, xs: F.silu(xs[0]),
    "softmax": lambda n, w, xs: F.softmax(xs[0], dim=1),
    "add": lambda n, w, xs: xs[0] + xs[1],
    "mul": lambda n, w, xs: xs[0] * xs[1],
    "concat": lambda n, w, xs: torch.cat(xs, dim=1),
    "flatten": lambda n, w, xs: xs[0].flatten(1)[:, :, None, None],
    "dropout": lambda n, w, xs: F.dropout(xs[0], n.attrs.p, training=False),
    "channel split": lambda n, w, xs: xs[0].chunk(n.attrs.parts, dim=1)[n.attrs.take - 1],
    "channel shuffle": lambda n, w, xs: xs[0].unflatten(1, (n.attrs.groups, -1)).transpose(1, 2).flatten(1, 2),
}


def torch_forward(graph, weights, x) -> dict[str, np.ndarray]:
    env = {graph.input_name: torch.from_numpy(np.asarray(x, dtype=np.float64))}
    with torch.no_grad():
        for node in graph.nodes:
            env[node.name] = TORCH[node.op.name](node, weights, [env[t] for t in node.inputs])
    return {k: v.numpy() for k, v in env.items()}


_CACHE: dict = {}


def case_data(case: str):
    """(graph, weights, x, torch per-node outputs), computed once per case."""
    if case not in _CACHE:
        graph = graph_for(case)
        weights = init_weights(graph, seed=3)
        x = batch(graph, 2, seed=5)
        _CACHE[case] = (graph, weights, x, torch_forward(graph, weights, x))
    return _CACHE[case]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    built: dict = {}

    def get(case: str):
        if case not in built:
            graph, weights, _, _ = case_data(case)
            outdir = tmp_path_factory.mktemp("np")
            stem = "net"
            paths = T.compile(graph, weights, outdir, stem)
            assert paths == [outdir / f"{stem}.py", outdir / f"{stem}.npz"]
            built[case] = (outdir, stem)
        return built[case]

    return get


# ---------------------------------------------------------------- the tables

# The (op, backend) tables are checked by tests/test_op_contract.py.


def test_the_inline_specs_use_every_op():
    used = {n.op.name for case in INLINE for n in graph_for(case).nodes}
    missing = sorted(set(ops.op_names()) - used)
    assert not missing, f"no NumPy test case uses op(s) {missing}: add them to ALL_OPS"


def test_inline_specs_exercise_asymmetric_padding_and_unfolded_bn():
    g = graph_for("allops")
    assert any(len(set(getattr(n.attrs, "pads", (0,)))) > 1 for n in g.nodes)
    unfolded = [s.main for s in schedule(g) if s.main.op.name == "bn"]
    assert unfolded, "ALL_OPS should keep one BN that cannot fold"
    assert any(s.bn is not None and s.main.op.name == "fc" for s in schedule(graph_for("maps")))


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_torch_node_by_node(case):
    graph, weights, x, expected = case_data(case)
    out, layers = T.reference_forward(graph, weights, x, keep=True)
    assert set(layers) == {n.name for n in graph.nodes}
    for node in graph.nodes:
        got = layers[node.name]
        assert got.dtype == np.float32 and got.shape == (2, *node.out_shape.chw), node.name
        # both sides are float64 until the reference's final cast to float32
        np.testing.assert_allclose(got, expected[node.name], rtol=1e-6, atol=1e-6 * np.abs(expected[node.name]).max()
                                   + 1e-30, err_msg=f"{case}: node {node.name} ({node.op.name})")
    np.testing.assert_array_equal(out, layers[graph.output])


@pytest.mark.parametrize("case", CASES)
def test_generated_runtime_matches_torch(case, build):
    graph, weights, x, expected = case_data(case)
    outdir, stem = build(case)
    y = T.run(outdir, stem, x)
    assert y.dtype == np.float32 and y.shape == (2, *graph.output_shape.chw)
    within(y, expected[graph.output], f"{case}: output", scale_of(graph, expected, graph.output))
    layers = T.run_layers(outdir, stem, x)
    assert set(layers) == {s.output for s in schedule(graph)}
    for name, value in layers.items():
        within(value, expected[name], f"{case}: step ending at {name}", scale_of(graph, expected, name))


def test_batch_is_independent_images(build):
    graph, weights, _, _ = case_data("allops")
    outdir, stem = build("allops")
    x = batch(graph, 3, seed=11)
    y = T.run(outdir, stem, x)
    for i in range(3):
        np.testing.assert_allclose(y[i:i + 1], T.run(outdir, stem, x[i:i + 1]), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_full_size_mobilenet_v1_matches_torch(tmp_path):
    graph = load_graph("mobilenet_v1.arch")
    weights = init_weights(graph, seed=1)
    x = batch(graph, 1, seed=2)
    expected = torch_forward(graph, weights, x)
    scale = scale_of(graph, expected, graph.output)
    T.compile(graph, weights, tmp_path, "mobilenet_v1")
    within(T.run(tmp_path, "mobilenet_v1", x), expected[graph.output], "mobilenet_v1 at 224", scale)
    np.testing.assert_allclose(T.reference_forward(graph, weights, x)[0], expected[graph.output], rtol=1e-5,
                               atol=1e-9)


# ---------------------------------------------------------------- kernels, one geometry at a time

GEOMETRIES = [  # (cin, cout, k, stride, pads, groups, size)
    (3, 8, (3, 3), (2, 2), (0, 0, 1, 1), 1, (9, 8)),
    (4, 6, (3, 2), (1, 2), (2, 0, 1, 1), 2, (7, 9)),
    (6, 6, (3, 3), (2, 1), (1, 1, 1, 1), 6, (8, 5)),  # depthwise through the im2col kernel
    (5, 7, (1, 1), (2, 2), (1, 0, 0, 1), 1, (6, 6)),  # strided, padded 1x1
]


@pytest.mark.parametrize("cin,cout,k,stride,pads,groups,size", GEOMETRIES)
def test_conv_kernels_match_torch(cin, cout, k, stride, pads, groups, size):
    from archdsl.runtime import numpy_kernels as K

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    t, l, bo, r = pads
    want = F.conv2d(F.pad(torch.from_numpy(x).double(), (l, r, t, bo)), torch.from_numpy(w).double(),
                    torch.from_numpy(b).double(), stride=stride, groups=groups).numpy()
    within(K.conv2d(x, w, b, stride, pads, groups=groups), want, "conv2d")
    within(K.conv2d(x, w, b, stride, pads, groups=groups, act=K.relu), np.maximum(want, 0), "conv2d + relu")
    if k == (1, 1) and groups == 1:
        within(K.conv1x1(x, w, b, stride, pads), want, "conv1x1")
    if groups == cin:
        within(K.conv_dw(x, w, b, stride, pads), want, "conv_dw")


def test_kernels_never_write_into_their_inputs():
    from archdsl.runtime import numpy_kernels as K

    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32)
    keep = x.copy()
    for act in (K.relu, K.relu6, K.sigmoid, K.hsigmoid, K.hswish, K.softmax, K.flatten, K.global_avg_pool):
        act(x)
    K.add(x, x, act=K.relu)
    K.scale_shift(x, np.ones(4, np.float32), np.zeros(4, np.float32), act=K.relu6)
    K.avg_pool(x, (3, 3), (1, 1), (1, 1, 1, 1))
    K.max_pool(x, (2, 2), (2, 2), (0, 0, 1, 1))
    np.testing.assert_array_equal(x, keep)


def test_activations_are_warning_free_on_extreme_values():
    from archdsl.runtime import numpy_kernels as K

    x = np.array([-1e30, -1e4, -100.0, -3.0, 0.0, 3.0, 100.0, 1e4, 1e30], np.float32).reshape(1, 9, 1, 1)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # numpy warns on these by default
        s = K.sigmoid(x)
        K.softmax(x)
    assert s.min() == 0.0 and s.max() == 1.0
    np.testing.assert_allclose(K.hswish(x).ravel()[3:6], [0.0, 0.0, 3.0])


# ---------------------------------------------------------------- the generated file


def test_generated_file_imports_only_numpy_and_the_standard_library(build):
    outdir, stem = build("allops")
    tree = ast.parse((outdir / f"{stem}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "os", "sys", "argparse"}, imported


def test_one_call_per_fused_step_with_its_spec_line(build):
    graph, _, _, _ = case_data("allops")
    outdir, stem = build("allops")
    text = (outdir / f"{stem}.py").read_text()
    steps = schedule(graph)
    body = text[text.index("def run("):text.index("def main(")]
    assert body.count("    # line ") == len(steps)
    for step in steps:
        assert f"# line {step.main.row.line}: " in body
    assert "def conv_dw(" in text and "def pad_hw(" in text  # the kernels and their helpers are copied
    assert "archdsl" not in "".join(ln for ln in text.splitlines() if ln.startswith(("import", "from")))


def test_generated_bytes_are_deterministic_and_location_free(tmp_path):
    graph = graph_for("allops")
    a = T.compile(graph, init_weights(graph, 4), tmp_path / "one", "net")
    b = T.compile(graph_for("allops"), init_weights(graph, 4), tmp_path / "two" / "deeper", "net")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    text = a[0].read_text()
    assert str(tmp_path) not in text and "/tmp" not in text
    c = T.compile(graph, init_weights(graph, 5), tmp_path / "three", "net")
    assert c[1].read_bytes() != a[1].read_bytes()  # other weights, other bytes


def test_script_runs_on_an_npy_input_without_warnings(tmp_path, build):
    graph, _, _, _ = case_data("allops")
    outdir, stem = build("allops")
    x = batch(graph, 2, seed=9, scale=200.0)  # large values: sigmoid/softmax saturate
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-W", "error", str(outdir / f"{stem}.py"), str(tmp_path / "x.npy"),
                           "-o", str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), T.run(outdir, stem, x))
    one = subprocess.run([sys.executable, "-W", "error", str(outdir / f"{stem}.py"), str(tmp_path / "x.npy")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert one.returncode == 0 and one.stdout.startswith("0: top "), one.stderr


def test_generated_source_compiles_warning_free(build):
    import warnings

    outdir, stem = build("maps")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile((outdir / f"{stem}.py").read_text(), f"{stem}.py", "exec")


def test_run_rejects_a_wrong_input_shape(build):
    outdir, stem = build("maps")
    with pytest.raises(ValueError, match=r"takes input \(N, 4, 12, 10\)"):
        T.run(outdir, stem, np.zeros((1, 3, 12, 10), np.float32))


def test_reference_rejects_a_wrong_input_shape():
    graph, weights, _, _ = case_data("maps")
    with pytest.raises(ValueError, match="NCHW"):
        T.reference_forward(graph, weights, np.zeros((1, 12, 10, 4), np.float32))


def test_module_name_must_be_an_identifier(tmp_path):
    graph = graph_for("maps")
    with pytest.raises(ArchError, match="identifier"):
        T.compile(graph, init_weights(graph), tmp_path, "my-net")
    assert not tmp_path.joinpath("my-net.py").exists()
