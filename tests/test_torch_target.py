"""The PyTorch target: the generated nn.Module against the NumPy reference
(archdsl.backends.numpy_target.reference_forward: float64, unfused, node by node) and
against ONNX Runtime, on the same weights.

Cases: every spec in specs/ at a reduced size (α = 0.25 and the smallest ρ that
elaborates, where the spec has them), plus two inline specs that between them use
every op, both ranks of tensor ((N, C, H, W) and an fc's (N, F)) meeting in
add / mul / concat, and every padding path (symmetric, uneven TensorFlow SAME,
wider than half the window).

Tolerance (archdsl.commands.verify.compare, the one `archdsl verify` uses): elementwise
|out - ref| <= 1e-4 * max|ref| + 1e-5 + 1e-3 * |ref|, per compared tensor. The module
computes in float32 with BN unfolded; the reference in float64.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ALL_OPS as SHARED_ALL_OPS, ROOT, all_specs, parse_text, small_graph

from archdsl import ops
from archdsl.backends import torch_target as T
from archdsl.backends.numpy_target import reference_forward
from archdsl.commands.verify import compare
from archdsl.errors import ArchError
from archdsl.weights import init_weights, load_weights

torch.set_num_threads(1)

# Asymmetric padding on a conv (same_tf, stride 2, odd width) and on an avg pool (the
# shortcut's same_tf pool: a helper that still does not count the padding), residual with
# and without a projection shortcut, a block holding a squeeze-and-excitation scale,
# a grouped conv with bias, concat of three branches, fc after flatten with BN (BatchNorm1d).
ZOO = """\
network zoo(alpha = 1.0, classes = 10)
input 33x31x3
width alpha round divisible(8)
after conv: bn relu
block se(r=4) {
  scale {
    global avg pool
    conv 1x1x{in.c}x{in.c // r} bias=yes after=relu width=fixed
    conv 1x1x{in.c}x{in.c * r} bias=yes after=hsigmoid width=fixed
  }
}
conv / s2        3x3x3x16     pad=same_tf
conv dw / s2     3x3x16 dw    pad=same_tf after=bn+relu6
residual {
  conv 1x1x16x32 after=bn+hswish
  conv dw / s1   5x5x32 dw  multiplier=1
  se r=4
  conv 1x1x32x16 after=bn width=fixed
}
residual {
  conv / s2 3x3x16x24 groups=2 bias=yes after=bn+sigmoid
  shortcut {
    avg pool / s2 2x2 pad=same_tf
    conv 1x1x16x24 after=bn
  }
}
concat {
  branch {
    max pool / s1 3x3 pad=same
  }
  branch {
    avg pool / s1 3x3 pad=same_tf
  }
  branch {
    conv 1x1x24x8
  }
}
max pool / s2 3x3 pad=1
flatten
dropout p=0.2
fc {in.c}x{classes} after=bn+relu
fc {classes}x{classes}
softmax
"""

# Padding the torch pooling modules cannot take (uneven on a max pool: a -inf pad module;
# wider than half the window on both pools), global max pool, a gate made by an fc ((N, F)
# times (N, C, H, W)), a same-shape gate, a concat and an add of an (N, F) and an
# (N, C, 1, 1) tensor, BN on a flattened tensor, a conv reading an fc's output, a depthwise
# channel multiplier.
ZOO2 = """\
network zoo2(classes = 6)
input 12x10x4
conv / s1        3x3x4x8      pad=valid bias=yes after=relu
max pool / s1    2x2          pad=same
avg pool / s1    3x3          pad=2
max pool / s2    3x3          pad=2
scale {
  global avg pool
  flatten
  fc 8x8 after=sigmoid
}
scale {
  conv dw 3x3x8 dw after=hsigmoid
}
concat {
  branch {
    global max pool
  }
  branch {
    global avg pool
    flatten
    fc 8x8 after=relu6
  }
}
conv 1x1x16x{classes} after=bn+hswish
residual {
  flatten
  fc {classes}x{classes} after=bn
}
flatten
bn
conv 1x1x{classes}x{classes} bias=yes
dropout p=0.5
conv dw 1x1x{classes} dw multiplier=2
softmax
"""

INLINE = {"zoo": ZOO, "zoo2": ZOO2, "shared": SHARED_ALL_OPS}
CASES = sorted(INLINE) + [p.name for p in all_specs()]
_GRAPHS: dict = {}



def graph_for(case: str):
    if case not in _GRAPHS:
        _GRAPHS[case] = parse_text(INLINE[case]) if case in INLINE else small_graph(ROOT / "specs" / case)
    return _GRAPHS[case]


def batch(graph, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *graph.input_shape.chw)).astype(np.float32)


def within(out, ref, what: str) -> None:
    c = compare(out, ref)
    assert c.ok, (f"{what}: max abs diff {c.max_abs:.3g} over tolerance {c.atol:.3g} + 1e-3*|ref| "
                  f"(largest excess at index {c.where})")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """case -> (graph, weights, outdir), compiled once per module."""
    done: dict = {}

    def get(case: str):
        if case not in done:
            graph = graph_for(case)
            weights = init_weights(graph, seed=1)
            outdir = tmp_path_factory.mktemp(case.replace(".", "_"))
            T.compile(graph, weights, outdir, graph.name)
            done[case] = (graph, weights, outdir)
        return done[case]

    return get


# ---------------------------------------------------------------- every op has a lowering

# The (op, backend) tables are checked by tests/test_op_contract.py.


def test_inline_specs_use_every_op():
    used = {n.op.name for case in INLINE for n in graph_for(case).nodes}
    missing = sorted(set(ops.op_names()) - used)
    assert not missing, f"ops never run by the torch target's tests: {missing}; add them to ZOO or ZOO2"


def test_missing_lowering_is_a_diagnostic(monkeypatch):
    monkeypatch.delitem(T.LOWERINGS, ops.HardSwish)
    with pytest.raises(ArchError, match="torch target has no lowering for 'hswish'"):
        T.module_source(graph_for("zoo"), "zoo")


# ---------------------------------------------------------------- numbers against the reference


@pytest.mark.parametrize("case", CASES)
def test_output_matches_reference(case, compiled):
    graph, weights, outdir = compiled(case)
    x = batch(graph)
    ref, _ = reference_forward(graph, weights, x)
    out = T.run(outdir, graph.name, x)
    assert out.shape == ref.shape
    within(out, ref, f"{case} (torch) output")


def check_layers(graph, weights, outdir, what: str) -> None:
    x = batch(graph, seed=3)
    _, ref_layers = reference_forward(graph, weights, x, keep=True)
    layers = T.run_layers(outdir, graph.name, x)
    assert list(layers) == [n.name for n in graph.nodes]
    for node in graph.nodes:  # in execution order: the first failure is the first diverging layer
        assert layers[node.name].shape == ref_layers[node.name].shape, node.name
        within(layers[node.name], ref_layers[node.name], f"{what} layer {node.name} ({node.op.name})")


@pytest.mark.parametrize("case", CASES)
def test_every_layer_matches_reference(case, compiled):
    graph, weights, outdir = compiled(case)
    check_layers(graph, weights, outdir, f"{case} (torch)")


def test_a_wrong_lowering_is_caught(tmp_path, monkeypatch):
    """The comparison can fail, and names the layer: an avg pool that counts its padding."""
    graph = graph_for("zoo")
    weights = init_weights(graph, seed=1)
    real = T.LOWERINGS[ops.AvgPool]

    def counting_padding(n, ranks):
        low = real(n, ranks)
        return dataclasses.replace(low, module=low.module.replace(", count_include_pad=False", ""))

    monkeypatch.setitem(T.LOWERINGS, ops.AvgPool, counting_padding)
    T.compile(graph, weights, tmp_path, "zoo")
    with pytest.raises(AssertionError, match=r"layer concat1\.branch2\.pool1 \(avg pool\)"):
        check_layers(graph, weights, tmp_path, "zoo (broken)")


# ---------------------------------------------------------------- names and weights


@pytest.mark.parametrize("case", CASES)
def test_state_dict_keys_are_ir_keys(case, compiled):
    graph, weights, outdir = compiled(case)
    model = T.load_module(outdir, graph.name).build()
    sd = model.state_dict()
    ir = {key: tuple(spec.shape) for key, spec in graph.parameters()}
    keys = {k: tuple(v.shape) for k, v in sd.items() if not k.endswith(".num_batches_tracked")}
    assert keys == ir
    saved = torch.load(outdir / f"{graph.name}.pt", weights_only=True)
    assert list(saved) == list(sd)  # the .pt is a state_dict of this very module, in its order
    for key in ir:
        assert np.array_equal(saved[key].numpy(), weights[key]), key


@pytest.mark.parametrize("case", ["zoo", "zoo2", "mobilenet_v2.arch"])
def test_trained_state_dict_loads_into_numpy_and_onnx(case, compiled, tmp_path):
    """Train the generated module a little, torch.save its state_dict, load it with
    archdsl.weights.load_weights: the NumPy reference and ONNX Runtime give the module's logits."""
    graph, _, outdir = compiled(case)
    torch.manual_seed(0)
    model = T.load_module(outdir, graph.name).build()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(3):  # moves the weights off their init and the BN statistics off 0 / 1
        xb = torch.from_numpy(batch(graph, n=4, seed=10 + step))
        loss = model(xb).float().square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path / "trained.pt"
    torch.save(model.state_dict(), path)

    weights = load_weights(path, graph)
    x = batch(graph, seed=5)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    ref, _ = reference_forward(graph, weights, x)
    within(logits, ref, f"{case}: trained module vs the NumPy reference on its loaded state_dict")
    assert np.abs(ref).max() > 0

    onnx_target = pytest.importorskip("archdsl.backends.onnx_target",
                                      reason="the ONNX target (archdsl/backends/onnx_target.py) is not in this checkout")
    if onnx_target.unavailable():
        pytest.skip(onnx_target.unavailable())
    onnx_target.compile(graph, weights, tmp_path / "onnx", graph.name)
    out = onnx_target.run(tmp_path / "onnx", graph.name, x)
    within(out, ref, f"{case}: ONNX Runtime on the trained state_dict vs the NumPy reference")
    within(logits, out, f"{case}: trained module vs ONNX Runtime")


class _Payload:
    """Unpickling this object would create a folder: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_malicious_pt_is_refused(compiled, tmp_path):
    graph, weights, outdir = compiled("zoo2")
    marker = tmp_path / "pwned"
    sd = {k: torch.from_numpy(v) for k, v in weights.items()}
    sd["conv1.conv.weight"] = _Payload(marker)
    evil = tmp_path / "evil.pt"
    torch.save(sd, evil)
    with pytest.raises(ArchError, match="refused"):
        load_weights(evil, graph)
    with pytest.raises(pickle.UnpicklingError):  # the generated build() loads with weights_only=True too
        T.load_module(outdir, graph.name).build(str(evil))
    assert not marker.exists()


def test_weights_that_do_not_fit_are_a_diagnostic(tmp_path):
    graph = graph_for("zoo2")
    weights = init_weights(graph, seed=1)
    weights.pop("conv1.conv.bias")
    with pytest.raises(ArchError, match="missing keys"):
        T.compile(graph, weights, tmp_path, "zoo2")
    assert not any(tmp_path.iterdir())  # all or nothing


# ---------------------------------------------------------------- the generated source


def _source(case: str, compiled) -> str:
    graph, _, outdir = compiled(case)
    return (outdir / f"{graph.name}.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_source_imports_only_torch_and_compiles_cleanly(case, compiled):
    src = _source(case, compiled)
    roots = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots <= {"torch", "collections"}, roots
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(src, f"{case}.py", "exec")
    assert "/tmp" not in src and str(ROOT) not in src  # no absolute paths


def test_generation_is_deterministic(tmp_path):
    graph = graph_for("zoo")
    weights = init_weights(graph, seed=1)
    T.compile(graph, weights, tmp_path / "a", "zoo")
    T.compile(graph, weights, tmp_path / "b", "zoo")
    for f in ("zoo.py", "zoo.pt"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from archdsl.backends import torch_target as T
from archdsl.weights import init_weights
from tests.conftest import parse_text
g = parse_text({ZOO!r})
T.compile(g, init_weights(g, seed=1), {str(tmp_path / 'c')!r}, "zoo")
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    for f in ("zoo.py", "zoo.pt"):  # another process (another hash seed): the same bytes
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "c" / f).read_bytes(), f


def test_module_reads_like_the_spec(compiled):
    graph, _, outdir = compiled("mobilenet_v1.arch")
    src = (outdir / "mobilenet_v1.py").read_text(encoding="utf-8")
    assert "self.conv1 = nn.Sequential(OrderedDict(\n            conv=nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)," in src
    assert "x = self.dw1(x)  " in src and "# conv dw / s1  3x3x32 dw  @ 112x112x32" in src
    assert "x = self.fc1(torch.flatten(x, 1))" in src
    assert "def build(weights_path=None):" in src
    model = T.load_module(outdir, "mobilenet_v1").build()
    assert isinstance(model.conv1, torch.nn.Sequential)
    assert list(dict(model.conv1.named_children())) == ["conv", "bn", "relu"]
    assert isinstance(model.dw13.dw, torch.nn.Conv2d) and model.dw13.dw.groups == model.dw13.dw.in_channels
    assert isinstance(model.pool1, torch.nn.AdaptiveAvgPool2d)


def test_residual_scale_and_concat_are_written_out(compiled):
    src = _source("zoo", compiled)
    assert "x = x + y  " in src  # residual: an explicit addition
    assert "y = y * z  " in src  # squeeze-and-excitation: an explicit multiply
    assert "x = torch.cat([y, z, x], dim=1)" in src
    assert "dw_pad=nn.ZeroPad2d((0, 1, 1, 1))," in src  # same_tf, stride 2, odd width: uneven
    assert "count_include_pad=False" in src
    assert "PaddedAvgPool2d(2, 2, (0, 0, 0, 1))" in src


def test_layers_keep_their_attributes(compiled):
    graph, _, outdir = compiled("mobilenet_v3_small.arch")
    model = T.load_module(outdir, graph.name).build()
    modules = dict(model.named_modules())
    checked = 0
    for node in graph.nodes:
        m = modules.get(node.name)
        if node.op.name == "bn":
            assert m.eps == pytest.approx(node.attrs.eps) and m.num_features == node.out_shape.c
            checked += 1
        elif node.op.name in ("conv", "conv dw"):
            assert (m.in_channels, m.out_channels, m.groups) == (node.in_shapes[0].c, node.attrs.out_channels,
                                                                 node.attrs.groups)
            assert m.kernel_size == tuple(node.attrs.kernel) and m.stride == tuple(node.attrs.stride)
            checked += 1
    assert checked > 50


def test_dead_branch_is_not_run(tmp_path):
    """A shortcut=auto whose shapes differ adds nothing: its shortcut keeps its weights but forward skips it."""
    graph = parse_text("""\
network dead()
input 9x8x16
residual shortcut=auto {
  conv / s2 3x3x16x24 after=bn
  shortcut {
    avg pool / s2 2x2
    conv 1x1x16x24 after=bn
  }
}
""")
    assert graph.nodes[-1].name == "residual1.shortcut.conv1.bn" and graph.output == "residual1.conv1.bn"
    weights = init_weights(graph, seed=1)
    T.compile(graph, weights, tmp_path, "dead")
    src = (tmp_path / "dead.py").read_text()
    forward = src[src.index("def forward(self, x):"):src.index("def forward_layers")]
    assert "shortcut" not in forward and "residual1.shortcut" in src
    x = batch(graph)
    within(T.run(tmp_path, "dead", x), reference_forward(graph, weights, x)[0], "dead: output")
    layers, ref_layers = T.run_layers(tmp_path, "dead", x), reference_forward(graph, weights, x, keep=True)[1]
    within(layers["residual1.shortcut.conv1.bn"], ref_layers["residual1.shortcut.conv1.bn"], "dead shortcut")


def test_layer_name_that_torch_reserves_is_a_diagnostic(tmp_path):
    graph = parse_text("network clash()\ninput 8x8x3\nconv 3x3x3x8 name=forward\n")
    with pytest.raises(ArchError) as err:
        T.compile(graph, init_weights(graph), tmp_path, "clash")
    assert "name=" in err.value.render()


# ---------------------------------------------------------------- running


def test_run_checks_its_input_and_files(compiled, tmp_path):
    graph, _, outdir = compiled("zoo2")
    with pytest.raises(ArchError, match="the model takes"):
        T.run(outdir, graph.name, np.zeros((1, 3, 12, 10), np.float32))
    with pytest.raises(ArchError, match="compile --target torch"):
        T.run(tmp_path, graph.name, batch(graph))


def test_unavailable_is_none_here():
    assert T.unavailable() is None and T.NAME == "torch" and T.EXTRA == "torch"


def test_cli_compile_gives_a_standalone_module(tmp_path):
    """`archdsl compile --target torch`, then the files alone in a fresh interpreter."""
    spec = ROOT / "specs" / "mobilenet_v1.arch"
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "archdsl", "compile", str(spec), "--target", "torch", "-o", str(out),
                    "--set", "alpha=0.25", "--set", "rho=0.25"], check=True, capture_output=True)
    assert sorted(p.name for p in out.iterdir()) == ["mobilenet_v1.pt", "mobilenet_v1.py"]
    code = ("import sys, torch; sys.path.insert(0, '.'); torch.manual_seed(0)\n"
            "from mobilenet_v1 import build\n"
            "m = build('mobilenet_v1.pt'); x = torch.randn(2, *m.input_shape)\n"
            "assert not m.training\n"
            "with torch.no_grad(): y = m(x)\n"
            "print(tuple(y.shape), round(float(y.sum()), 4))\n")
    res = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=out, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(2, 1000) 2.0"  # softmax rows sum to 1


def test_stats_and_c_compile_never_import_torch(tmp_path):
    spec = ROOT / "specs" / "mobilenet_v1.arch"
    code = f"""
import sys
from archdsl.cli import app
import archdsl.backends.torch_target  # the target module itself imports torch lazily
for argv in (["stats", {str(spec)!r}], ["compile", {str(spec)!r}, "--target", "c", "-o", {str(tmp_path / 'c')!r}]):
    try:
        app(argv)
    except SystemExit as e:
        assert not e.code, (argv, e.code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxruntime"))
assert not heavy, heavy
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
