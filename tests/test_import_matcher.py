"""The structural matcher and the readers on models made here: every op known, layouts against an
independent NHWC forward pass, the canonical order, the identity BN, ONNX round trips of every spec."""
from __future__ import annotations

import json

import numpy as np
import pytest

import archdsl.ops as ops
from archdsl.analysis.schedule import schedule
from archdsl.backends import numpy_target, onnx_target
from archdsl.importers import import_weights, read_model
from archdsl.importers.structure import IR_KINDS, LAYOUTS, ModelTensor, ir_shape_of
from archdsl.weights import fold_bn, init_weights

from conftest import all_specs, load_graph, parse_text


def test_every_op_has_an_import_kind():
    missing = [name for name in ops.op_names() if name not in IR_KINDS]
    assert not missing, f"ops without an entry in the importer's IR_KINDS (op, importer): " \
                        f"{', '.join(f'({m}, import)' for m in missing)}"


# ---------------------------------------------------------------- layouts


def test_layouts_against_their_definitions():
    """Each layout, built from an IR tensor by its definition, converts back to the same tensor."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4, 3, 2)).astype(np.float32)  # (O, I, kh, kw)
    cases = {
        "OIHW": w,
        "OHWI": np.stack([w[o].transpose(1, 2, 0) for o in range(6)]),           # w[o, i, y, x] at [o, y, x, i]
        "HWIO": np.stack([w[:, :, y, :].T for y in range(3)]),                     # [y, x, i, o]
    }
    for layout, stored in cases.items():
        t = ModelTensor("t", stored, layout)
        assert ir_shape_of(t) == w.shape, layout
        np.testing.assert_array_equal(LAYOUTS[layout][1](stored), w, err_msg=layout)
    dw = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)  # (C·m, 1, kh, kw) with C = 4, m = 2
    one_hwc = np.zeros((1, 3, 3, 8), np.float32)
    hwcm = np.zeros((3, 3, 4, 2), np.float32)
    for c in range(4):
        for m in range(2):
            one_hwc[0, :, :, c * 2 + m] = dw[c * 2 + m, 0]
            hwcm[:, :, c, m] = dw[c * 2 + m, 0]  # Keras: output channel c·m + k
    np.testing.assert_array_equal(LAYOUTS["1HWC"][1](one_hwc), dw)
    np.testing.assert_array_equal(LAYOUTS["HWCM"][1](hwcm), dw)
    assert ir_shape_of(ModelTensor("t", hwcm, "HWCM")) == dw.shape
    fc = rng.standard_normal((5, 7)).astype(np.float32)
    np.testing.assert_array_equal(LAYOUTS["OI"][1](fc), fc)
    np.testing.assert_array_equal(LAYOUTS["IO"][1](fc.T.copy()), fc)


# ---------------------------------------------------------------- a Keras .h5 written here


SYNTH_SPEC = """
network synth(classes = 5)
input 8x8x3
defaults conv: bias=yes
defaults bn: eps=0.001
conv / s2        3x3x3x4      pad=1  after=relu
conv dw / s1     3x3x4 dw     pad=same_tf  multiplier=2  after=bn+relu6
fc               128x{classes}
softmax
"""


def synth_weights(rng):
    return {
        "conv/kernel:0": rng.standard_normal((3, 3, 3, 4)).astype(np.float32) * 0.5,
        "conv/bias:0": rng.standard_normal(4).astype(np.float32) * 0.1,
        "dw/depthwise_kernel:0": rng.standard_normal((3, 3, 4, 2)).astype(np.float32) * 0.5,
        "dw/bias:0": rng.standard_normal(8).astype(np.float32) * 0.1,
        "bn/gamma:0": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "bn/beta:0": rng.standard_normal(8).astype(np.float32) * 0.1,
        "bn/moving_mean:0": rng.standard_normal(8).astype(np.float32) * 0.1,
        "bn/moving_variance:0": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "dense/kernel:0": rng.standard_normal((128, 5)).astype(np.float32) * 0.2,
        "dense/bias:0": rng.standard_normal(5).astype(np.float32) * 0.1,
    }


def write_keras_h5(path, weights, sequential: bool) -> None:
    """A Keras 2 style full-model .h5: model_config JSON and model_weights/<layer>/<layer>/<name>."""
    import h5py

    layers = [
        ("ZeroPadding2D", "pad", {"padding": [[1, 1], [1, 1]]}),
        ("Conv2D", "conv", {"filters": 4, "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid",
                            "use_bias": True, "activation": "relu", "dilation_rate": [1, 1], "groups": 1}),
        ("DepthwiseConv2D", "dw", {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
                                   "depth_multiplier": 2, "use_bias": True, "activation": "linear"}),
        ("BatchNormalization", "bn", {"axis": [3], "epsilon": 0.001}),
        ("ReLU", "relu6", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}),
        ("Flatten", "flatten", {}),
        ("Dropout", "drop", {"rate": 0.5}),
        ("Dense", "dense", {"units": 5, "activation": "softmax", "use_bias": True}),
    ]
    cfg_layers = []
    if sequential:
        for k, (cls, name, cfg) in enumerate(layers):
            extra = {"batch_input_shape": [None, 8, 8, 3]} if k == 0 else {}
            cfg_layers.append({"class_name": cls, "config": {"name": name, **extra, **cfg}})
        config = {"class_name": "Sequential", "config": {"name": "synth", "layers": cfg_layers}}
    else:
        cfg_layers.append({"class_name": "InputLayer", "name": "input_1",
                           "config": {"name": "input_1", "batch_input_shape": [None, 8, 8, 3]}, "inbound_nodes": []})
        prev = "input_1"
        for cls, name, cfg in layers:
            cfg_layers.append({"class_name": cls, "name": name, "config": {"name": name, **cfg},
                               "inbound_nodes": [[[prev, 0, 0, {}]]]})
            prev = name
        config = {"class_name": "Functional", "config": {
            "name": "synth", "layers": cfg_layers, "input_layers": [["input_1", 0, 0]],
            "output_layers": [[prev, 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.4.0"
        mw = f.create_group("model_weights")
        for _, name, _ in layers:
            g = mw.create_group(name)
            names = [k for k in weights if k.startswith(name + "/")]
            g.attrs["weight_names"] = [f"{name}/{k}".encode() for k in names]
            for k in names:
                g.create_dataset(f"{name}/{k}", data=weights[k])


def keras_forward_nhwc(x, w):
    """The synthetic model in NHWC with TensorFlow's semantics, written out independently."""
    x = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))  # ZeroPadding2D(1)
    n = x.shape[0]
    y = np.zeros((n, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            patch = x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]                  # valid, stride 2
            y[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w["conv/kernel:0"])
    y = np.maximum(y + w["conv/bias:0"], 0)
    yp = np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))                             # same, stride 1
    z = np.zeros((n, 4, 4, 8))
    k = w["dw/depthwise_kernel:0"]
    for i in range(4):
        for j in range(4):
            patch = yp[:, i:i + 3, j:j + 3, :]
            for c in range(4):
                for m in range(2):
                    z[:, i, j, c * 2 + m] = np.einsum("nhw,hw->n", patch[..., c], k[:, :, c, m])
    z = z + w["dw/bias:0"]
    z = (z - w["bn/moving_mean:0"]) / np.sqrt(w["bn/moving_variance:0"] + 0.001) * w["bn/gamma:0"] + w["bn/beta:0"]
    z = np.clip(z, 0, 6)
    flat = z.reshape(n, -1)                                                      # Flatten: H, W, C order
    logits = flat @ w["dense/kernel:0"] + w["dense/bias:0"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("sequential", [False, True], ids=["functional", "sequential"])
def test_keras_layouts_padding_multiplier_and_flatten_order(tmp_path, sequential):
    rng = np.random.default_rng(7)
    w = synth_weights(rng)
    path = tmp_path / "synth.h5"
    write_keras_h5(path, w, sequential)
    graph = parse_text(SYNTH_SPEC)
    result = import_weights(graph, path)
    x = rng.uniform(0, 1, (3, 8, 8, 3)).astype(np.float32)
    want = keras_forward_nhwc(x, w)
    got, _ = numpy_target.reference_forward(graph, result.weights, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(got.reshape(3, -1), want, rtol=1e-5, atol=1e-6)
    notes = {r.ir_key: r.note for r in result.rows}
    assert "columns reordered H,W,C -> C,H,W" in notes["fc1.weight"]


# ---------------------------------------------------------------- canonical order, BN identity


def test_branch_order_does_not_matter(tmp_path):
    """An ONNX ResNet whose shortcut conv comes first and whose Adds read (shortcut, body) imports the same."""
    import onnx

    graph = load_graph("resnet8_cifar10.arch")
    w = init_weights(graph, 5)
    onnx_target.compile(graph, w, tmp_path, "net")
    model = onnx.load(str(tmp_path / "net.onnx"))
    nodes = list(model.graph.node)
    for k, node in enumerate(nodes):
        if node.op_type == "Add":
            node.input[0], node.input[1] = node.input[1], node.input[0]
    # move each shortcut conv right after the node that produces its input
    for sc in [n for n in nodes if "shortcut" in n.name and n.op_type == "Conv"]:
        nodes.remove(sc)
        at = next(k for k, n in enumerate(nodes) if sc.input[0] in n.output)
        nodes.insert(at + 1, sc)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "shuffled.onnx"))
    got = import_weights(graph, tmp_path / "shuffled.onnx").weights
    for k in w:
        np.testing.assert_array_equal(got[k], w[k], err_msg=k)


def test_identity_bn_folds_to_the_models_own_numbers(models_dir):
    """BN set to the identity changes nothing: folding it gives the .tflite's weights bit for bit."""
    graph = load_graph("vww_mobilenet_v1.arch")
    result = import_weights(graph, models_dir / "vww" / "vww_96_float.tflite")
    assert result.bn_folded
    w = result.weights
    folded = fold_bn(graph, schedule(graph), w)
    assert len(folded) == 28
    for name, (fw, fb) in folded.items():
        np.testing.assert_array_equal(fw, w[f"{name}.weight"], err_msg=name)
        np.testing.assert_array_equal(fb, w[f"{name}.bias"], err_msg=name)
    model = read_model(models_dir / "vww" / "vww_96_float.tflite")
    first = next(op for op in model.ops if op.kind == "conv")
    np.testing.assert_array_equal(w["conv1.conv.weight"], first.params["weight"].array.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- every spec, through the ONNX target


def reduced(spec) -> dict:
    params = load_graph(spec).params
    sets = {k: v for k, v in (("alpha", 0.25), ("classes", 10)) if k in params}
    if "rho" in params and load_graph(spec).input_shape.h > 64:
        sets["rho"] = 0.25
    return sets


@pytest.mark.parametrize("spec", all_specs(), ids=lambda p: p.stem)
def test_onnx_round_trip(spec, tmp_path):
    """Seeded weights -> the ONNX target -> archdsl import: the same arrays on the same keys."""
    graph = load_graph(spec, **reduced(spec))
    w = init_weights(graph, 11)
    onnx_target.compile(graph, w, tmp_path, "net")
    result = import_weights(graph, tmp_path / "net.onnx")
    assert not result.bn_folded
    assert sorted(result.weights) == sorted(w)
    for k in w:
        np.testing.assert_array_equal(result.weights[k], w[k], err_msg=f"{spec.stem}: {k}")


def test_a_cyclic_graph_is_a_diagnostic():
    from archdsl.errors import ArchError
    from archdsl.importers.structure import ModelOp, _G, canonical_order

    def op(kind, ins, out):
        return _G(kind, ins, out, ModelOp(out, kind, kind, ins, out))

    nodes = [op("conv", ["in", "c"], "a"), op("relu", ["a"], "b"), op("add", ["b", "a"], "c")]
    with pytest.raises(ArchError, match="the graph has a cycle"):
        canonical_order(nodes, "in", "c")
