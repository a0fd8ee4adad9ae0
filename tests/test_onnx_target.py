"""The ONNX target: checker-valid models whose inferred shapes are the IR's and whose
numbers agree with the NumPy reference, layer by layer, on any batch size.

Cases: every spec in specs/ at a reduced size (α = 0.25 and a small ρ where the spec
has them), plus two small specs that between them use every op.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ALL_OPS as SHARED_ALL_OPS, all_specs, parse_text, small_graph

from archdsl import ops
from archdsl.backends import onnx_target as T
from archdsl.commands.verify import compare, layer_scale
from archdsl.errors import ArchError
from archdsl.weights import init_weights, load_weights

# Every op at least once: asymmetric padding (same_tf, stride 2, even size), avg pool with
# padding (count_include_pad must be off), residual, squeeze-and-excitation gate, concat,
# a BN with an eps large enough that dropping it shows.
ALL_OPS = """\
network allops(alpha = 1.0, rho = 1.0)
input 20x18x3
width alpha
resolution rho
after conv: bn relu
conv / s2        3x3x3x8        pad=same_tf bias=yes
conv dw / s1     3x3x8 dw       after=bn+relu6
conv / s1        1x1x8x16       after=bn+hswish
max pool / s2    3x3            pad=same_tf
residual {
  conv / s1      3x3x16x16      after=bn
  dropout        p=0.2
}
scale {
  global avg pool
  conv / s1      1x1x16x4       bias=yes after=relu
  conv / s1      1x1x4x16       bias=yes after=hsigmoid
}
concat {
  branch {
    conv / s1    1x1x16x8       after=sigmoid
  }
  branch {
    avg pool / s1  3x3          pad=1
  }
  branch {
    max pool / s1  3x3          pad=same
  }
}
bn               eps=0.25
global max pool
flatten
dropout
fc               40x10
softmax
"""

# fc and flatten on maps larger than 1x1 (C, H, W order), softmax over the channels of a map,
# a strided avg pool with asymmetric padding, a global avg pool written as a flag.
MAPS = """\
network maps()
input 13x11x3
conv / s2        3x3x3x6        pad=same_tf after=relu6
avg pool / s2    2x2            pad=same_tf
residual {
  conv / s1      3x3x6x6        after=hswish
}
softmax
fc               72x12          bias=no
flatten
avg pool         1x1            global
"""

INLINE = {"allops": ALL_OPS, "maps": MAPS, "shared": SHARED_ALL_OPS}
BATCH = 3



CASES = sorted(INLINE) + [p.name for p in all_specs()]


def graph_for(case: str):
    if case in INLINE:
        return parse_text(INLINE[case])
    return small_graph(Path(all_specs()[0].parent / case))


_COMPILED: dict[str, tuple] = {}


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def compiled(case: str, outdir: Path):
    """(graph, weights, path to the .onnx), compiled once per case."""
    if case not in _COMPILED:
        graph = graph_for(case)
        weights = init_weights(graph, seed=7)
        stem = case.removesuffix(".arch")
        paths = T.compile(graph, weights, outdir, stem)
        assert paths == [outdir / f"{stem}.onnx"]
        _COMPILED[case] = (graph, weights, paths[0])
    return _COMPILED[case]


def batch(graph, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *graph.input_shape.chw)).astype(np.float32)


# ---------------------------------------------------------------- the table of lowerings

# The (op, backend) tables are checked by tests/test_op_contract.py.


def test_the_inline_specs_use_every_op():
    used = {n.op.name for case in INLINE for n in graph_for(case).nodes}
    missing = sorted(set(ops.op_names()) - used)
    assert not missing, f"no ONNX test case uses op(s) {missing}: add them to ALL_OPS"


# ---------------------------------------------------------------- structure


@pytest.mark.parametrize("case", CASES)
def test_checker_full(case, outdir):
    _, _, path = compiled(case, outdir)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


@pytest.mark.parametrize("case", CASES)
def test_inferred_shapes_are_the_ir_shapes(case, outdir):
    graph, _, path = compiled(case, outdir)
    model = onnx.load(str(path))
    assert len(model.graph.value_info) == 0  # the shapes below come from inference alone
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        if not vi.name.startswith("const/"):
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, vi.name
        shapes[vi.name] = [d.dim_param if d.HasField("dim_param") else d.dim_value
                           for d in vi.type.tensor_type.shape.dim]
    produced = {out for node in model.graph.node for out in node.output}
    assert not produced - set(shapes), f"no inferred shape for {sorted(produced - set(shapes))}"
    assert shapes["input"] == ["N", *graph.input_shape.chw]
    by_name = {n.name: n for n in model.graph.node}
    for node in graph.nodes:
        tensor = by_name[node.name].output[0]
        assert tensor == ("output" if node.name == graph.output else node.name)
        assert shapes[tensor] == ["N", *node.out_shape.chw], \
            f"{case}: {node.name} ({node.op.name}): ONNX infers {shapes[tensor]}, the IR says {node.out_shape}"


@pytest.mark.parametrize("case", CASES)
def test_model_interface_and_spec_lines(case, outdir):
    graph, _, path = compiled(case, outdir)
    model = onnx.load(str(path))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("input", "output")
    for vi in (inp, out):
        assert vi.type.tensor_type.shape.dim[0].dim_param == "N"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["archdsl.output_node"] == graph.output
    assert meta["archdsl.layout"] == "NCHW"
    src = Path(graph.source_name).name
    by_name = {n.name: n for n in model.graph.node}
    for node in graph.nodes:
        doc = by_name[node.name].doc_string
        assert doc.startswith(f"{src}:{node.row.line}: "), (node.name, doc)
        assert " ".join(node.row.text.split()) in doc


def test_lowering_attributes():
    """The mappings the NumPy comparison could miss at some sizes, checked by name."""
    graph = parse_text(ALL_OPS)
    model = T.build_model(graph, init_weights(graph, 0))
    nodes = {n.name: n for n in model.graph.node}
    attrs = {name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for name, n in nodes.items()}
    assert nodes["conv1.conv"].op_type == "Conv" and attrs["conv1.conv"]["pads"] == [0, 0, 1, 1]
    assert attrs["dw1.dw"]["group"] == 8
    assert nodes["concat1.branch2.pool1"].op_type == "AveragePool"
    assert attrs["concat1.branch2.pool1"]["count_include_pad"] == 0
    assert nodes["scale1.pool1"].op_type == "GlobalAveragePool"
    assert nodes["pool2"].op_type == "GlobalMaxPool"
    assert nodes["dw1.relu6"].op_type == "Clip"
    assert nodes["conv2.hswish"].op_type == "HardSwish"
    assert nodes["scale1.conv2.hsigmoid"].op_type == "HardSigmoid"
    assert attrs["scale1.conv2.hsigmoid"]["alpha"] == pytest.approx(1 / 6)
    assert attrs["scale1.conv2.hsigmoid"]["beta"] == pytest.approx(0.5)
    assert [nodes[k].op_type for k in ("fc1/flat", "fc1/gemm", "fc1")] == ["Flatten", "Gemm", "Unsqueeze"]
    assert attrs["fc1/gemm"]["transB"] == 1
    assert nodes["softmax1"].op_type == "Softmax" and attrs["softmax1"]["axis"] == 1
    assert nodes["dropout1"].op_type == "Identity"
    assert {n.op_type for n in model.graph.node if n.name.startswith("conv1.bn")} == {"BatchNormalization"}


# ---------------------------------------------------------------- weights


@pytest.mark.parametrize("case", CASES)
def test_initializers_are_the_ir_parameters(case, outdir):
    graph, weights, path = compiled(case, outdir)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.initializer] == [k for k, _ in graph.parameters()]
    back = load_weights(path, graph)
    assert sorted(back) == sorted(weights)
    for key, value in weights.items():
        assert back[key].dtype == np.float32 and np.array_equal(back[key], value), key


def test_wrong_weights_are_a_diagnostic(tmp_path):
    graph = parse_text(MAPS)
    weights = init_weights(graph, 0)
    weights.pop("fc1.weight")
    with pytest.raises(ArchError, match="missing keys"):
        T.compile(graph, weights, tmp_path, "maps")
    assert not list(tmp_path.iterdir())  # nothing written


# ---------------------------------------------------------------- numbers


def within(out, ref, what: str, scale: float | None = None) -> None:
    """The project's scale-aware tolerance (archdsl verify, docs/targets.md): elementwise
    |out - ref| <= 1e-4*scale + 1e-5 + 1e-3*|ref|, scale = max|ref| (of the layer and its inputs)."""
    c = compare(out, ref, scale)
    assert c.ok, (f"{what}: largest difference {c.max_abs:.3g}, tolerance {c.atol:.3g} + 1e-3*|ref| "
                  f"(largest excess at index {c.where})")


@pytest.mark.parametrize("case", CASES)
def test_matches_numpy_reference_layer_by_layer(case, outdir):
    from archdsl.backends.numpy_target import reference_forward

    graph, weights, path = compiled(case, outdir)
    x = batch(graph, BATCH)
    ref_out, ref_layers = reference_forward(graph, weights, x, keep=True)
    tensors = {**ref_layers, graph.input_name: x}
    got = T.run_layers(path.parent, path.stem, x)
    assert sorted(got) == sorted(n.name for n in graph.nodes)
    for node in graph.nodes:
        want = np.asarray(ref_layers[node.name])
        have = got[node.name]
        assert have.shape == want.shape == (BATCH, *node.out_shape.chw), (case, node.name, have.shape, want.shape)
        within(have, want, f"{case}, backend onnx, layer {node.name} ({node.op.name}, line {node.row.line})",
               layer_scale(graph, tensors, node.name))
    out = T.run(path.parent, path.stem, x)
    assert out.shape == np.asarray(ref_out).shape
    within(out, ref_out, f"{case}, backend onnx, output")


@pytest.mark.parametrize("case", ["allops", "maps"])
def test_dynamic_batch(case, outdir):
    """Batch 1 and batch 3 run on the same file; each sample's output is independent of the batch."""
    from archdsl.backends.numpy_target import reference_forward

    graph, weights, path = compiled(case, outdir)
    x = batch(graph, 3, seed=1)
    three = T.run(path.parent, path.stem, x)
    for i in range(3):
        one = T.run(path.parent, path.stem, x[i:i + 1])
        assert one.shape == (1, *graph.output_shape.chw)
        ref, _ = reference_forward(graph, weights, x[i:i + 1])
        within(one, ref, f"{case}, batch of 1, sample {i}")
        within(one[0], three[i], f"{case}, sample {i} alone vs in a batch of 3")


def test_run_rejects_a_wrong_input_shape(outdir):
    graph, _, path = compiled("maps", outdir)
    c, h, w = graph.input_shape.chw
    with pytest.raises(ArchError, match="input has shape"):
        T.run(path.parent, path.stem, np.zeros((1, c, h + 1, w), np.float32))
    with pytest.raises(ArchError, match="input has shape"):
        T.run(path.parent, path.stem, np.zeros((c, h, w), np.float32))


def test_run_without_a_model_is_a_diagnostic(tmp_path):
    with pytest.raises(ArchError, match="no ONNX model"):
        T.run(tmp_path, "nothing", np.zeros((1, 3, 4, 4), np.float32))


# ---------------------------------------------------------------- determinism and hygiene


def test_same_spec_same_bytes(tmp_path):
    spec = all_specs()[0]
    a = T.compile(small_graph(spec), init_weights(small_graph(spec), 3), tmp_path / "a", "m")[0]
    b = T.compile(small_graph(spec), init_weights(small_graph(spec), 3), tmp_path / "b", "m")[0]
    data = a.read_bytes()
    assert data == b.read_bytes()
    for path in (str(tmp_path), str(spec.parent), str(Path.cwd())):
        assert path.encode() not in data
    other = T.compile(small_graph(spec), init_weights(small_graph(spec), 4), tmp_path / "c", "m")[0]
    assert other.read_bytes() != data  # the bytes do depend on the weights


def test_importing_the_target_does_not_import_onnx():
    code = ("import sys, archdsl.backends.onnx_target as t; "
            "assert t.unavailable() is None; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pool_padding_as_large_as_the_window_never_reaches_the_target():
    # ONNX pooling refuses padding >= window; the pool op itself rejects such rows for every target.
    with pytest.raises(ArchError, match="not smaller than the 2x2 pool window"):
        parse_text("network p()\ninput 5x5x2\nmax pool / s1  2x2  pad=2\n")
