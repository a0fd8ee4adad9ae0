"""Trained MLPerf Tiny models imported into their specs, run by archdsl's targets, against LiteRT.

The reference is the float .tflite run in LiteRT (ai_edge_litert) with its reference kernels
(BUILTIN_REF, as in shared/models/README.md), plus the README's printed outputs. Weights come from
the .tflite (BN folded), the Keras .h5 (BN kept) and an ONNX graph that this file builds from the
.tflite with onnx.helper (BN folded, explicit pads, the residual Add as `add(shortcut, body)`; checked
against LiteRT through onnxruntime before use).

Tolerance: logits (the fc output, read from LiteRT's FULLY_CONNECTED tensor) within
1e-5 · max(1, max |logit|); probabilities within 1e-5 absolute. Inputs: the README's "zeros" and
"pattern" images and three seeded random images, fed as the models were trained (VWW: pixels / 255;
ResNet-8: raw 0-255), NHWC for LiteRT and NCHW for archdsl.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from archdsl.backends import c_target, numpy_target, onnx_target
from archdsl.importers import import_weights

from conftest import MODELS, load_graph

LOGIT_RTOL = 1e-5
PROB_ATOL = 1e-5
# The README prints 6 decimals (±5e-7) and says its kernels agree within ±1e-6 and the .h5 forward
# pass matches the .tflite within 2e-6 (ResNet-8): its numbers are checked to 3e-6.
README_ATOL = 3e-6

MODELS_INFO = {
    "vww": dict(spec="vww_mobilenet_v1.arch", tflite="vww/vww_96_float.tflite", h5="vww/vww_96.h5",
                size=96, scale=1.0 / 255.0),
    "resnet8": dict(spec="resnet8_cifar10.arch", tflite="ic/pretrainedResnet.tflite",
                    h5="ic/pretrainedResnet.h5", size=32, scale=1.0),
}

# shared/models/README.md, "Reference outputs" (BUILTIN_REF), printed to 6 decimals
README_OUTPUTS = {
    ("vww", "zeros"): [0.979771, 0.020229],
    ("vww", "pattern"): [0.978876, 0.021124],
    ("resnet8", "zeros"): [0.402748, 0.000677, 0.001049, 0.043681, 0.289931, 0.005267, 0.221008, 0.009777,
                           0.017756, 0.008105],
}
README_RESNET_PATTERN = {1: 0.185896, 8: 0.79604}  # "argmax 8, [.. 0.185896 @1, 0.79604 @8]"


def pattern_image(size: int) -> np.ndarray:
    """The README's "pattern" input: p[h, w, c] = (7h + 13w + 29c) mod 256, uint8 HWC."""
    h, w, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    return ((7 * h + 13 * w + 29 * c) % 256).astype(np.uint8)


def model_inputs(model: str) -> tuple[list[str], np.ndarray]:
    """Names and an NHWC float32 batch: zeros, pattern, three random images (seeded)."""
    info = MODELS_INFO[model]
    size = info["size"]
    rng = np.random.default_rng(2024)
    images = [np.zeros((size, size, 3), np.uint8), pattern_image(size)]
    images += [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(3)]
    x = np.stack(images).astype(np.float32) * np.float32(info["scale"])
    return ["zeros", "pattern", "random0", "random1", "random2"], x


def litert_run(path, x_nhwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, logits) from LiteRT's reference kernels, one image at a time."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preserve_all_tensors is "for debugging": that is what we do
        it = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    fc = [op for op in it._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    assert len(fc) == 1, "expected one FULLY_CONNECTED op"
    probs, logits = [], []
    for image in x_nhwc:
        it.set_tensor(it.get_input_details()[0]["index"], image[None])
        it.invoke()
        probs.append(it.get_tensor(it.get_output_details()[0]["index"])[0].copy())
        logits.append(it.get_tensor(int(fc[0]["outputs"][0]))[0].copy())
    return np.array(probs), np.array(logits)


# ---------------------------------------------------------------- an ONNX graph written from the .tflite


def onnx_from_tflite(path, out_path) -> None:
    """A float .tflite written as an NCHW ONNX graph, op by op (what tflite2onnx produces): BN stays
    folded, SAME becomes explicit pads, weights are transposed to OIHW. Written for this test only."""
    import onnx
    import tflite
    from onnx import TensorProto, helper, numpy_helper

    buf = open(path, "rb").read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    sg = m.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}

    def const(t):
        tensor = sg.Tensors(t)
        data = m.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or not data.size:
            return None
        return np.frombuffer(data.tobytes(), np.float32).reshape(tensor.ShapeAsNumpy())

    def shape(t):
        return [int(d) for d in sg.Tensors(t).ShapeAsNumpy()]

    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    def emit(node, code, out, i):
        """Append `node` (whose output is named out + '_pre' when an activation is fused) and its RELU."""
        nodes.append(node)
        if code != 0:
            assert code == 1, "only RELU is fused in these models"
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out], name=f"relu{i}"))

    def fused(code, out, i):
        return out if code == 0 else out + "_pre"

    def opts(op, cls):
        o = getattr(tflite, cls)()
        t = op.BuiltinOptions()
        o.Init(t.Bytes, t.Pos)
        return o

    def same_pads(n, k, s):
        out = (n + s - 1) // s
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        oc = m.OperatorCodes(op.OpcodeIndex())
        kind = names[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]
        ins = [op.Inputs(k) for k in range(op.InputsLength())]
        out = f"t{op.Outputs(0)}"
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            dw = kind == "DEPTHWISE_CONV_2D"
            o = opts(op, "DepthwiseConv2DOptions" if dw else "Conv2DOptions")
            w = const(ins[1])
            w = w.transpose(3, 0, 1, 2) if dw else w.transpose(0, 3, 1, 2)
            _, h, wd, c = shape(ins[0])
            kh, kw = w.shape[2:]
            sh, sw = o.StrideH(), o.StrideW()
            (t, b), (left, r) = ((same_pads(h, kh, sh), same_pads(wd, kw, sw)) if o.Padding() == 0
                                 else ((0, 0), (0, 0)))
            emit(helper.make_node(
                "Conv", [f"t{ins[0]}", init(f"w{i}", w), init(f"b{i}", const(ins[2]))],
                [fused(o.FusedActivationFunction(), out, i)], name=f"conv{i}", strides=[sh, sw],
                pads=[t, left, b, r], kernel_shape=[kh, kw], group=c if dw else 1), o.FusedActivationFunction(), out, i)
        elif kind == "ADD":
            o = opts(op, "AddOptions")
            emit(helper.make_node("Add", [f"t{ins[0]}", f"t{ins[1]}"],
                                  [fused(o.FusedActivationFunction(), out, i)], name=f"add{i}"),
                 o.FusedActivationFunction(), out, i)
        elif kind == "AVERAGE_POOL_2D":
            o = opts(op, "Pool2DOptions")
            nodes.append(helper.make_node("AveragePool", [f"t{ins[0]}"], [out], name=f"pool{i}",
                                          kernel_shape=[o.FilterHeight(), o.FilterWidth()],
                                          strides=[o.StrideH(), o.StrideW()]))
        elif kind == "RESHAPE":
            nodes.append(helper.make_node("Flatten", [f"t{ins[0]}"], [out], name=f"flatten{i}", axis=1))
        elif kind == "FULLY_CONNECTED":
            nodes.append(helper.make_node("Gemm", [f"t{ins[0]}", init(f"w{i}", const(ins[1])),
                                                   init(f"b{i}", const(ins[2]))], [out], name=f"fc{i}", transB=1))
        elif kind == "SOFTMAX":
            nodes.append(helper.make_node("Softmax", [f"t{ins[0]}"], [out], name=f"softmax{i}", axis=1))
        else:
            raise AssertionError(f"unexpected TFLite op {kind}")
    tin, tout = sg.Inputs(0), sg.Outputs(0)
    _, h, w, c = shape(tin)
    graph = helper.make_graph(nodes, "from_tflite",
                              [helper.make_tensor_value_info(f"t{tin}", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info(f"t{tout}", TensorProto.FLOAT, shape(tout))],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_path))


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def litert():
    """{model: (names, x_nhwc, probs, logits)} from the float .tflite in LiteRT."""
    if not MODELS.is_dir():
        pytest.skip(f"the shared MLPerf Tiny models are not at {MODELS}")
    out = {}
    for model, info in MODELS_INFO.items():
        names, x = model_inputs(model)
        probs, logits = litert_run(MODELS / info["tflite"], x)
        out[model] = (names, x, probs, logits)
    return out


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """{(model, source): path}: the shipped .tflite and .h5, and the ONNX graph written from the .tflite."""
    if not MODELS.is_dir():
        pytest.skip(f"the shared MLPerf Tiny models are not at {MODELS}")
    d = tmp_path_factory.mktemp("onnx_models")
    out = {}
    for model, info in MODELS_INFO.items():
        out[(model, "tflite")] = MODELS / info["tflite"]
        out[(model, "h5")] = MODELS / info["h5"]
        onnx_path = d / f"{model}.onnx"
        onnx_from_tflite(MODELS / info["tflite"], onnx_path)
        out[(model, "onnx")] = onnx_path
    return out


_imported: dict = {}


def imported(model: str, source: str, files) -> tuple:
    """(graph, weights) imported from one source, once per session."""
    key = (model, source)
    if key not in _imported:
        graph = load_graph(MODELS_INFO[model]["spec"])
        _imported[key] = (graph, import_weights(graph, files[key]).weights)
    return _imported[key]


def logits_node(graph) -> str:
    """The node whose output is the logits: the input of the final softmax."""
    last = graph.node(graph.output)
    assert last.op.name == "softmax"
    return last.inputs[0]


def check_against_litert(what: str, names, probs, logits, ref_probs, ref_logits) -> None:
    scale = max(1.0, float(np.abs(ref_logits).max()))
    for k, name in enumerate(names):
        d_logit = float(np.abs(logits[k] - ref_logits[k]).max())
        assert d_logit <= LOGIT_RTOL * scale, (
            f"{what}, input {name}: logits differ from LiteRT by {d_logit:.3g} "
            f"(tolerance {LOGIT_RTOL:g} x {scale:.3g}); archdsl {logits[k]}, LiteRT {ref_logits[k]}")
        d_prob = float(np.abs(probs[k] - ref_probs[k]).max())
        assert d_prob <= PROB_ATOL, (f"{what}, input {name}: probabilities differ from LiteRT by {d_prob:.3g}; "
                                     f"archdsl {probs[k]}, LiteRT {ref_probs[k]}")


# ---------------------------------------------------------------- the harness itself


@pytest.mark.parametrize("model", sorted(MODELS_INFO))
def test_litert_reproduces_the_readme(litert, model):
    """LiteRT here gives the README's outputs: the reference harness is sound."""
    names, _, probs, _ = litert[model]
    for (m, name), want in README_OUTPUTS.items():
        if m == model:
            np.testing.assert_allclose(probs[names.index(name)], want, atol=README_ATOL, err_msg=f"{model} {name}")
    if model == "resnet8":
        p = probs[names.index("pattern")]
        assert int(np.argmax(p)) == 8
        for cls, want in README_RESNET_PATTERN.items():
            assert abs(p[cls] - want) <= README_ATOL


@pytest.mark.parametrize("model", sorted(MODELS_INFO))
def test_handwritten_onnx_matches_litert(litert, model_files, model):
    """The ONNX graph written from the .tflite runs in onnxruntime like LiteRT (so importing it is a fair test)."""
    import onnxruntime as ort

    names, x, ref_probs, _ = litert[model]
    sess = ort.InferenceSession(str(model_files[(model, "onnx")]), providers=["CPUExecutionProvider"])
    probs = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: xi[None].transpose(0, 3, 1, 2)})[0]
                            for xi in x])
    assert np.abs(probs - ref_probs).max() <= PROB_ATOL


# ---------------------------------------------------------------- imported weights in archdsl's targets


@pytest.mark.parametrize("source", ["tflite", "h5", "onnx"])
@pytest.mark.parametrize("model", sorted(MODELS_INFO))
def test_numpy_reference_matches_litert_and_readme(litert, model_files, model, source):
    """The float64 reference semantics with imported weights: LiteRT's logits, and the README's numbers."""
    graph, weights = imported(model, source, model_files)
    names, x, ref_probs, ref_logits = litert[model]
    probs, layers = numpy_target.reference_forward(graph, weights, x.transpose(0, 3, 1, 2), keep=True)
    logits = layers[logits_node(graph)].reshape(len(names), -1)
    probs = probs.reshape(len(names), -1)
    check_against_litert(f"{model} from {source}, numpy reference", names, probs, logits, ref_probs, ref_logits)
    for (m, name), want in README_OUTPUTS.items():
        if m == model:
            np.testing.assert_allclose(probs[names.index(name)], want, atol=README_ATOL,
                                       err_msg=f"{model} from {source}: README output for {name}")


TARGETS = {"numpy": numpy_target, "onnx": onnx_target, "c": c_target}


@pytest.mark.parametrize("target", ["numpy", "onnx", "c"])
@pytest.mark.parametrize("source", ["tflite", "h5", "onnx"])
@pytest.mark.parametrize("model", sorted(MODELS_INFO))
def test_target_matches_litert(litert, model_files, tmp_path, model, source, target):
    """Each target compiled with the imported weights (what `archdsl compile --weights` builds)."""
    tgt = TARGETS[target]
    reason = tgt.unavailable()
    if reason:
        pytest.skip(f"the {target} target is unavailable here: {reason}")
    graph, weights = imported(model, source, model_files)
    names, x, ref_probs, ref_logits = litert[model]
    tgt.compile(graph, weights, tmp_path, "net")
    layers = tgt.run_layers(tmp_path, "net", x.transpose(0, 3, 1, 2))
    logits = np.asarray(layers[logits_node(graph)]).reshape(len(names), -1)
    probs = np.asarray(tgt.run(tmp_path, "net", x.transpose(0, 3, 1, 2))).reshape(len(names), -1)
    check_against_litert(f"{model} from {source}, {target} target", names, probs, logits, ref_probs, ref_logits)


@pytest.mark.parametrize("model", sorted(MODELS_INFO))
def test_onnx_import_equals_tflite_import(model_files, model):
    """The same folded tensors, read through two formats and two layouts, land on the same keys."""
    _, a = imported(model, "tflite", model_files)
    _, b = imported(model, "onnx", model_files)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
