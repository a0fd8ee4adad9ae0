"""int8 import of the MLPerf Tiny models and the NumPy int8 reference, bit-exact on every tensor.

Oracles, pinned (archdsl.quant.oracles.ORACLES, and the dev extra of pyproject.toml):
TensorFlow Lite Micro (`tflite-micro` 0.dev20261023182759, reference kernels, FC in fixed point)
and LiteRT BUILTIN_REF (`ai-edge-litert` 2.3.0, FC requantized in double). Inputs: 20 random int8
images (seeds 0..19) and the README's two images ("zeros": pixels 0, "pattern": (7h + 13w + 29c)
mod 256, fed as pixel − 128). Every step output the model also has is compared (the RESHAPE before
the FC is a view of the pool output, which is compared). Also checked: the final outputs printed
in shared/models/README.md.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from archdsl.errors import ArchError
from archdsl.quant import oracles as O
from archdsl.quant.network import QuantizedNetwork
from archdsl.quant.runtime import run_int8

from conftest import MODELS, load_graph

CASES = {
    "vww": ("vww_mobilenet_v1.arch", {}, "vww/vww_96_int8.tflite"),
    "resnet8": ("resnet8_cifar10.arch", {}, "ic/pretrainedResnet_quant.tflite"),
    "resnet8_large": ("resnet8_cifar10.arch", {"f": 40}, "ic/pretrainedResnet_large_int8.tflite"),
}

# shared/models/README.md, "Reference outputs", BUILTIN_REF column ("pattern" of the large model: first 3)
README = {
    "vww": {"zeros": [120, -120], "pattern": [118, -118]},
    "resnet8": {"zeros": [-48, -128, -127, -108, -48, -127, -71, -125, -116, -127],
                "pattern": [-128, -44, -123, -128, -128, -128, -128, -128, 39, -128]},
    "resnet8_large": {"zeros": [-117, -128, -117, -120, 86, -128, -126, -126, -120, -128],
                      "pattern": [-54, 54, -128]},
}

_CACHE: dict = {}


def imported(case: str):
    """(graph, net, tensor map, model path), imported once per test run."""
    if case not in _CACHE:
        if not MODELS.is_dir():
            pytest.skip(f"the shared MLPerf Tiny models are not at {MODELS}")
        pytest.importorskip("tflite")
        from archdsl.importers import import_int8_weights

        spec, sets, model = CASES[case]
        graph = load_graph(spec, **sets)
        _, weights, tensor_map = import_int8_weights(graph, MODELS / model)
        _CACHE[case] = (graph, QuantizedNetwork.build(graph, weights), tensor_map, MODELS / model, weights)
    return _CACHE[case][:4]


def readme_images(graph) -> dict[str, np.ndarray]:
    h, w, c = graph.input_shape.h, graph.input_shape.w, graph.input_shape.c
    hh, ww, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    pattern = ((7 * hh + 13 * ww + 29 * cc) % 256).astype(np.int64)
    zeros = np.zeros((h, w, c), np.int64)
    return {k: (v - 128).astype(np.int8).transpose(2, 0, 1)[None] for k, v in (("zeros", zeros), ("pattern", pattern))}


def inputs(graph) -> np.ndarray:
    shape = graph.input_shape.chw
    rand = [np.random.default_rng(seed).integers(-128, 128, size=(1, *shape)).astype(np.int8) for seed in range(20)]
    return np.concatenate(rand + list(readme_images(graph).values()))


_OURS: dict = {}


def ours(case: str, fc_requant: str):
    """Every step output for the 22 inputs; the LiteRT mode reruns only from the first FC."""
    key = (case, fc_requant)
    if key not in _OURS:
        graph, net, _, _ = imported(case)
        if fc_requant == "tflm":
            _OURS[key] = run_int8(net, inputs(graph), "tflm", keep=True)[1]
        else:
            first_fc = next(k for k, s in enumerate(net.steps) if s.kind == "fc")
            base = ours(case, "tflm")
            _OURS[key] = run_int8(net, inputs(graph), fc_requant, keep=True, resume=(base, first_fc))[1]
    return _OURS[key]


_THEIRS: dict = {}


def theirs(case: str, oracle: str):
    """The oracle's tensors for the 22 inputs, run once per test run."""
    if (case, oracle) not in _THEIRS:
        pytest.importorskip({"tflm": "tflite_micro", "litert": "ai_edge_litert"}[oracle])
        pinned = O.ORACLES[oracle]
        assert O.installed_version(pinned.package) == pinned.version, "the bit-exact claim is for the pinned version"
        graph, net, tensor_map, path = imported(case)
        wanted = [t for k, t in tensor_map.items() if k != graph.input_name]
        _THEIRS[case, oracle] = O.oracle_tensors(oracle, path, O.to_nhwc(inputs(graph)), wanted)
    return _THEIRS[case, oracle]


@pytest.mark.parametrize("oracle", ["tflm", "litert"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_tensor_is_bit_exact(case, oracle):
    pinned = O.ORACLES[oracle]
    graph, net, tensor_map, path = imported(case)
    wanted = [t for k, t in tensor_map.items() if k != graph.input_name]
    diffs = O.compare(tensor_map, ours(case, pinned.fc_requant), theirs(case, oracle), [s.output for s in net.steps])
    # every op of the model but the RESHAPE has its tensor here
    assert len(diffs) == len(net.steps) == len(wanted)
    bad = [(d.tensor, d.model_tensor, d.total - d.equal, d.max_lsb) for d in diffs if not d.exact]
    assert not bad, f"{case} vs {pinned.title}: (tensor, model tensor, values differing, max LSB): {bad}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_numpy_runtime_is_bit_exact_with_tflm(case, tmp_path):
    """`compile --target numpy` with the imported int8 weights: run_int8's every layer equals
    TensorFlow Lite Micro's tensor; run() quantizes and dequantizes at the boundary."""
    from archdsl.backends import numpy_target
    from archdsl.quant import arithmetic as A

    graph, net, tensor_map, _ = imported(case)
    weights = _CACHE[case][4]
    numpy_target.compile(graph, weights, tmp_path, "net")
    module = numpy_target.load_module(tmp_path, "net")
    layers: dict = {}
    y = module.run_int8(inputs(graph), layers=layers)
    diffs = O.compare(tensor_map, layers, theirs(case, "tflm"), [s.output for s in net.steps])
    assert len(diffs) == len(net.steps) and all(d.exact for d in diffs), [d for d in diffs if not d.exact]
    x = A.dequantize(inputs(graph)[:3], net.input.scale, net.input.zero_point)  # exactly representable
    np.testing.assert_array_equal(module.run(x), A.dequantize(y[:3], net.output.scale, net.output.zero_point))
    numpy_target.compile(graph, weights, tmp_path / "again", "net")
    assert (tmp_path / "net.py").read_bytes() == (tmp_path / "again" / "net.py").read_bytes()
    assert (tmp_path / "net.npz").read_bytes() == (tmp_path / "again" / "net.npz").read_bytes()


def test_int8_weights_and_a_target_without_int8(models_dir, tmp_path):
    from typer.testing import CliRunner

    from archdsl.cli import app
    from archdsl.quant.weights_file import save_int8

    from conftest import SPECS

    graph, net, _, _ = imported("resnet8")
    save_int8(_CACHE["resnet8"][4], tmp_path / "w.npz")
    r = CliRunner().invoke(app, ["compile", str(SPECS / "resnet8_cifar10.arch"), "-t", "torch", "-o",
                                 str(tmp_path / "o"), "--weights", str(tmp_path / "w.npz")])
    assert r.exit_code == 1 and "Traceback" not in r.output and "has no int8 build" in r.output
    r = CliRunner().invoke(app, ["compile", str(SPECS / "resnet8_cifar10.arch"), "-t", "numpy", "-o",
                                 str(tmp_path / "n"), "--weights", str(tmp_path / "w.npz")])
    assert r.exit_code == 0, r.output


def test_the_fc_modes_differ_where_the_oracles_do():
    """The control: on ResNet-8 the two FC roundings give different logits for some of the 22
    inputs, so the test above really tells the two oracles apart."""
    graph, net, _, _ = imported("resnet8")
    fc = next(s.output for s in net.steps if s.kind == "fc")
    assert np.any(ours("resnet8", "tflm")[fc] != ours("resnet8", "litert_ref")[fc])


@pytest.mark.parametrize("case", sorted(CASES))
def test_readme_outputs(case):
    graph, net, _, _ = imported(case)
    for name, image in readme_images(graph).items():
        y, _ = run_int8(net, image, "litert_ref")
        want = README[case][name]
        assert y.ravel()[: len(want)].tolist() == want, (case, name)


def test_imported_parameters_are_the_models(models_dir):
    """Spot values from shared/notes/tflite_int8.md §1 (read there from the flatbuffer)."""
    graph, net, _, _ = imported("vww")
    assert net.input.zero_point == -128 and abs(net.input.scale - 1 / 255) < 1e-9
    first = net.steps[0]
    assert first.arrays["multiplier"][:3].tolist() == [1179182713, 1673859857, 1629160017]
    assert first.arrays["shift"][:3].tolist() == [-7, -8, -8]
    flushed = sum(int(np.sum((s.arrays["multiplier"] == 0))) for s in net.steps if "multiplier" in s.arrays)
    assert flushed == 20  # dead channels whose shift < -31
    sm = net.steps[-1]
    assert (sm.attrs["input_multiplier"], sm.attrs["left_shift"], sm.attrs["diff_min"]) == (2011586560, 20, -1984)
    assert all(q.zero_point == -128 for q in (s.out for s in net.steps if s.kind == "conv"))
    graph, net, _, _ = imported("resnet8")
    add = next(s for s in net.steps if s.kind == "add")
    m = add.attrs["multipliers"]
    assert sorted(m[:2]) == [(1073741824, 0), (1623821475, -2)] and m[2] == (1098017566, -17)  # inputs commute


# ---------------------------------------------------------------- diagnostics


def _doctored(case: str, edit):
    """import_int8 on the model with one of its tensors changed by `edit(model)`."""
    from archdsl.importers import match, read_model
    from archdsl.importers.int8 import import_int8

    spec, sets, name = CASES[case]
    graph = load_graph(spec, **sets)
    model = read_model(MODELS / name)
    edit(model)
    return import_int8(graph, model, match(graph, model))


def _weight(model, index: int):
    ops = [op for op in model.ops if "weight" in op.params]
    return ops[index].params["weight"]


def test_per_tensor_conv_weights_are_refused_on_the_spec_line(models_dir):
    def edit(model):
        w = _weight(model, 2)
        w.quant = dataclasses.replace(w.quant, scales=w.quant.scales[:1], zero_points=(0,))

    with pytest.raises(ArchError) as e:
        _doctored("vww", edit)
    d = e.value.diagnostics[0]
    assert "quantized per tensor" in d.message and "per output channel" in d.message
    assert d.loc is not None and d.loc.line == 22  # the spec's `conv / s1 1x1x8x16` row
    assert "'" in d.message and "conv" in d.message.lower()


def test_missing_quantization_is_refused_naming_the_tensor(models_dir):
    from archdsl.importers.structure import ModelTensor

    def edit(model):
        op = [op for op in model.ops if "weight" in op.params][0]
        w = op.params["weight"]
        op.params["weight"] = ModelTensor(w.name, w.array, w.layout)

    with pytest.raises(ArchError) as e:
        _doctored("resnet8", edit)
    d = e.value.diagnostics[0]
    assert "is not int8-quantized" in d.message and d.loc is not None and d.loc.line == 19  # the first conv row


def test_a_pool_that_rescales_is_refused(models_dir):
    def edit(model):
        pool = next(op for op in model.ops if op.kind == "avgpool")
        q = model.quant[pool.output]
        model.quant[pool.output] = dataclasses.replace(q, scales=(q.scales[0] * 2,))

    with pytest.raises(ArchError) as e:
        _doctored("vww", edit)
    d = e.value.diagnostics[0]
    assert "shares its input's" in d.message and "AVERAGE_POOL_2D" in d.message and d.loc.line == 41


def test_the_wrong_spec_is_a_diagnostic_on_its_line(models_dir, tmp_path):
    """A spec one repeat short of the int8 model: the layers it lacks are named, on the spec row."""
    from typer.testing import CliRunner

    from archdsl.cli import app

    from conftest import SPECS

    spec = tmp_path / "vww.arch"
    text = (SPECS / "vww_mobilenet_v1.arch").read_text()
    assert "\n5x {" in text
    spec.write_text(text.replace("\n5x {", "\n4x {"))
    r = CliRunner().invoke(app, ["import", str(spec), str(models_dir / "vww/vww_96_int8.tflite"),
                                 "-o", str(tmp_path / "w.npz")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"{spec}:38:1: error: the TFLite model has 2 layer(s) with no row in the spec" in r.output
    assert "CONV_2D #22 'model/conv2d_11/Conv2D'" in r.output and not (tmp_path / "w.npz").exists()


def test_an_op_without_an_int8_rule_is_refused_by_name():
    from conftest import parse_text

    graph = parse_text("network n()\ninput 8x8x3\nconv / s1 3x3x3x4\nhswish\nglobal avg pool\n")
    from archdsl.quant.weights_file import int8_schema

    with pytest.raises(ArchError) as e:
        int8_schema(graph)
    d = e.value.diagnostics[0]
    assert "'hswish'" in d.message and "int8" in d.message and d.loc.line == 4


# ---------------------------------------------------------------- the int8 weight file


def test_int8_weight_file_round_trip_and_refusals(tmp_path):
    from archdsl.quant.weights_file import is_int8_weights, load_int8, save_int8
    from archdsl.weights import save_npz

    graph, net, _, _ = imported("resnet8")
    weights = _CACHE["resnet8"][4]
    path = save_int8(weights, tmp_path / "w.npz")
    assert is_int8_weights(path)
    back = load_int8(path, graph)
    assert sorted(back) == sorted(weights)
    assert all(back[k].dtype == weights[k].dtype and np.array_equal(back[k], weights[k]) for k in weights)

    broken = dict(weights)
    del broken["conv1.conv.bias"]
    broken["conv1.conv.weight"] = weights["conv1.conv.weight"].astype(np.float32)
    save_int8(broken, tmp_path / "b.npz")
    with pytest.raises(ArchError) as e:
        load_int8(tmp_path / "b.npz", graph)
    text = e.value.render() if hasattr(e.value, "render") else str(e.value)
    assert "missing keys (1): conv1.conv.bias" in str(e.value.diagnostics[0].notes)
    assert "conv1.conv.weight is float32" in str(e.value.diagnostics[0].notes), text

    save_npz({"x": np.zeros(2, np.float32)}, tmp_path / "f.npz")
    assert not is_int8_weights(tmp_path / "f.npz")
    with pytest.raises(ArchError, match="not an archdsl int8 weight file"):
        load_int8(tmp_path / "f.npz", graph)
    np.savez(tmp_path / "v.npz", __format__=np.array("archdsl-int8"), __version__=np.array(2, np.int32))
    with pytest.raises(ArchError, match="version"):
        load_int8(tmp_path / "v.npz", graph)


# ---------------------------------------------------------------- verify, int8 mode


def test_verify_int8_mode(models_dir, tmp_path):
    from typer.testing import CliRunner

    from archdsl.cli import app
    from archdsl.quant.weights_file import save_int8

    from conftest import SPECS

    graph, net, _, path = imported("resnet8")
    weights = dict(_CACHE["resnet8"][4])
    save_int8(weights, tmp_path / "w.npz")
    args = ["verify", str(SPECS / "resnet8_cifar10.arch"), "--targets", "numpy", "--model", str(path)]
    r = CliRunner().invoke(app, args + ["--weights", str(tmp_path / "w.npz")])
    assert r.exit_code == 0, r.output
    assert "bit-exact" in r.output and "15/15" in r.output
    # LiteRT rounds the FC differently on some of these 22 images: its row is compared in its
    # rounding, the targets in TFLite Micro's
    r = CliRunner().invoke(app, args + ["--weights", str(tmp_path / "w.npz"), "--oracle", "litert", "--batch", "22"])
    assert r.exit_code == 0, r.output

    # a bias shifted in the first conv of stack 2: its tensor is the first to diverge from the oracle
    key = "residual2.conv1.conv.bias"
    weights[key] = (weights[key].astype(np.int64) + 40000).astype(np.int32)
    save_int8(weights, tmp_path / "bad.npz")
    r = CliRunner().invoke(app, args + ["--weights", str(tmp_path / "bad.npz"), "--oracle", "litert"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "first diverging tensor: residual2.conv1.relu" in r.output and "LSB" in r.output
    assert "line 25" in r.output  # the row of that conv


def test_verify_int8_refuses_float_weights(tmp_path):
    from typer.testing import CliRunner

    from archdsl.cli import app
    from archdsl.weights import save_npz

    from conftest import SPECS

    save_npz({"x": np.zeros(1, np.float32)}, tmp_path / "f.npz")
    r = CliRunner().invoke(app, ["verify", str(SPECS / "resnet8_cifar10.arch"), "--weights", str(tmp_path / "f.npz")])
    assert r.exit_code == 1 and "is not an int8 weight file" in r.output


# ---------------------------------------------------------------- dynamic-range models

DR_SPEC = "network dr()\ninput 8x8x3\nconv / s1 3x3x3x4 bias=yes pad=same_tf\nrelu\n"


def test_a_dynamic_range_model_imports_dequantized(tmp_path):
    """int8 weights with float activations: the weights come out as scale · q, and the float
    network runs as LiteRT runs the same conv with those float weights (the oracle)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    pytest.importorskip("tflite")
    from typer.testing import CliRunner

    from archdsl.backends.numpy_target import reference_forward
    from archdsl.cli import app
    from archdsl.weights import load_weights

    from conftest import parse_text
    from tflite_builder import conv_model

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    scales = (np.abs(w).reshape(4, -1).max(axis=1) / 127).astype(np.float32)
    q = np.clip(np.round(w / scales[:, None, None, None]), -127, 127).astype(np.int8)
    bias = rng.normal(0, 0.1, 4).astype(np.float32)
    (tmp_path / "dr.tflite").write_bytes(conv_model(q, bias, (8, 8, 3), (scales, [0] * 4, 0)))
    dequantized = (scales[:, None, None, None] * q.astype(np.float32)).astype(np.float32)
    (tmp_path / "fl.tflite").write_bytes(conv_model(dequantized, bias, (8, 8, 3)))
    (tmp_path / "dr.arch").write_text(DR_SPEC)

    r = CliRunner().invoke(app, ["import", str(tmp_path / "dr.arch"), str(tmp_path / "dr.tflite"),
                                 "-o", str(tmp_path / "w.npz")])
    assert r.exit_code == 0, r.output
    assert "1 int8 weight tensors dequantized to float (a dynamic-range quantized model" in r.output
    graph = parse_text(DR_SPEC)
    weights = load_weights(tmp_path / "w.npz", graph)
    np.testing.assert_array_equal(weights["conv1.weight"], dequantized.transpose(0, 3, 1, 2))

    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    it = litert.Interpreter(model_path=str(tmp_path / "fl.tflite"),
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    want = it.get_tensor(it.get_output_details()[0]["index"]).transpose(0, 3, 1, 2)
    got, _ = reference_forward(graph, weights, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_an_int8_weight_without_quantization_is_refused(tmp_path):
    """A weight whose quantization is missing (an int8 constant without scales) is a diagnostic."""
    pytest.importorskip("tflite")
    from typer.testing import CliRunner

    from archdsl.cli import app

    from tflite_builder import conv_model

    q = np.ones((4, 3, 3, 3), np.int8)
    (tmp_path / "bad.tflite").write_bytes(conv_model(q, np.zeros(4, np.float32), (8, 8, 3), None))
    (tmp_path / "dr.arch").write_text(DR_SPEC)
    r = CliRunner().invoke(app, ["import", str(tmp_path / "dr.arch"), str(tmp_path / "bad.tflite"),
                                 "-o", str(tmp_path / "w.npz")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "'conv/weight' is INT8 without quantization parameters" in r.output


# ---------------------------------------------------------------- small int8 models written here

Q_SPEC = "network q()\ninput 10x10x4\nconv / s1 3x3x4x6 bias=yes pad=same_tf\nrelu6\n"


@pytest.mark.parametrize("float_io", [False, True], ids=["int8-io", "float-io"])
@pytest.mark.parametrize("oracle", ["tflm", "litert"])
def test_a_relu6_conv_is_bit_exact_with_int8_or_float_io(tmp_path, float_io, oracle):
    """A full-int8 conv with fused ReLU6 (a clamp the MLPerf models do not have), as the converter
    writes it with int8 I/O or with its default float I/O (QUANTIZE ... DEQUANTIZE)."""
    pytest.importorskip("tflite")
    pytest.importorskip({"tflm": "tflite_micro", "litert": "ai_edge_litert"}[oracle])
    from archdsl.importers import import_int8_weights

    from conftest import parse_text
    from tflite_builder import int8_conv_model

    rng = np.random.default_rng(0)
    model = tmp_path / "q.tflite"
    model.write_bytes(int8_conv_model(rng.integers(-127, 128, (6, 3, 3, 4)).astype(np.int8),
                                      rng.uniform(0.002, 0.01, 6).astype(np.float32),
                                      rng.integers(-5000, 5000, 6).astype(np.int32),
                                      (0.02, -3), (0.05, -100), (10, 10, 4), float_io=float_io))
    graph = parse_text(Q_SPEC)
    _, weights, tensor_map = import_int8_weights(graph, model)
    net = QuantizedNetwork.build(graph, weights)
    assert (net.input.scale, net.input.zero_point) == (float(np.float32(0.02)), -3)
    assert (net.steps[0].attrs["act_min"], net.steps[0].attrs["act_max"]) == (-100, 20)  # ReLU6: zp + 6/0.05
    q = np.random.default_rng(1).integers(-128, 128, (20, 4, 10, 10)).astype(np.int8)
    _, ours = run_int8(net, q, O.ORACLES[oracle].fc_requant, keep=True)
    wanted = [t for k, t in tensor_map.items() if k != graph.input_name]
    diffs = O.compare(tensor_map, ours, O.oracle_tensors(oracle, model, O.to_nhwc(q), wanted),
                      [s.output for s in net.steps])
    assert len(diffs) == 1 and diffs[0].exact and diffs[0].total == 20 * 6 * 10 * 10
    assert np.any(ours[net.steps[0].output] == 20)  # the upper clamp is reached
