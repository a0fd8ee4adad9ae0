"""`compile --target onnx` with int8 weights: a QDQ graph that ONNX Runtime runs.

ORT fuses QuantizeLinear / DequantizeLinear around Conv, Gemm, Add, pools into its integer kernels,
which requantize in float (as XNNPACK does), not with TFLite's fixed-point double rounding. So the
claim is agreement, not bit-exactness, measured on the MLPerf Tiny int8 models against the NumPy
int8 reference (bit-exact with TensorFlow Lite Micro) over 20 random images and the README's two,
onnxruntime 1.32.0 CPU provider, one thread (measured):

    model      output values equal   max |diff| (LSB of the output)   top-1 agreement
    VWW        40 / 44 (91 %)        1                                22 / 22
    ResNet-8   177 / 220 (80 %)      34 (softmax at 1/256)            22 / 22

(the ResNet softmax amplifies 1-LSB differences of its low-resolution logits; LiteRT's own XNNPACK
kernels reach 69 LSB there, shared/notes/tflite_int8.md section 3.2).
"""
from __future__ import annotations

import numpy as np
import pytest

from archdsl.quant.arithmetic import dequantize, quantize_float
from archdsl.quant.runtime import run_int8

from test_quant_models import _CACHE, imported, inputs


def int8_weights(case: str) -> dict:
    """The int8 weight dict test_quant_models.imported() read from the model."""
    imported(case)
    return _CACHE[case][4]

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BOUNDS = {"vww": (1, 0.85), "resnet8": (48, 0.75)}  # max LSB of the output, share of output values equal


@pytest.mark.parametrize("case", sorted(BOUNDS))
def test_qdq_graph_agrees_with_the_int8_reference(case, tmp_path):
    import onnx

    from archdsl.backends import onnx_target

    graph, net, _, _ = imported(case)
    weights = int8_weights(case)
    onnx_target.compile(graph, weights, tmp_path, case)
    model = onnx.load(str(tmp_path / f"{case}.onnx"))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "Conv" in ops
    inits = {i.name: i for i in model.graph.initializer}
    assert inits["conv1.conv.weight"].data_type == onnx.TensorProto.INT8  # int8 weights, not float

    q = inputs(graph)
    x = dequantize(q, net.input.scale, net.input.zero_point)  # quantizes back to q exactly
    y = onnx_target.run(tmp_path, case, x)
    ours = quantize_float(y, net.output.scale, net.output.zero_point).astype(np.int32).reshape(len(q), -1)
    ref = run_int8(net, q)[0].astype(np.int32).reshape(len(q), -1)
    max_lsb, share = BOUNDS[case]
    diff = np.abs(ours - ref)
    assert diff.max() <= max_lsb, diff.max()
    assert (diff == 0).mean() >= share, (diff == 0).mean()
    assert np.array_equal(ours.argmax(1), ref.argmax(1))  # top-1 on every image
    # every step's int8 tensor is exposed by run_layers (what `verify --weights INT8.npz` compares)
    layers = onnx_target.run_layers(tmp_path, case, x)
    for s in net.steps:
        assert layers[s.output].dtype == np.int8 and layers[s.output].shape == (len(q), *s.out_shape.chw)
