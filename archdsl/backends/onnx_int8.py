"""The ONNX target's int8 build: a QDQ graph (QuantizeLinear / DequantizeLinear around float ops),
the form ONNX Runtime fuses into its integer kernels (QLinearConv, QGemm, ...).

One table (`INT8_LOWERINGS`) of small lowerings, one per int8 kernel kind (quant/rules.py), each
writing the float op of a quantized step between the dequantized inputs and a QuantizeLinear to
the step's output parameters. Every number comes from the QuantizedNetwork: int8 weights with
their per-channel scales (DequantizeLinear, axis 0), int32 biases with scale in_scale * w_scale,
each tensor's (scale, zero point). The input is float (quantized by the graph's first
QuantizeLinear), the output is the dequantized last tensor, as the float model's.

ONNX Runtime's integer kernels do not round as TensorFlow Lite does (they requantize in float),
so the ONNX build is close to, not equal to, the int8 reference: tests/test_onnx_int8.py states
and checks the agreement (in LSB of the output, and top-1).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .common import params_text
from .onnx_target import BATCH, INPUT, IR_VERSION, OPSET, OUTPUT, _source_name

RELU = {"relu", "relu6"}


class QEmitter:
    def __init__(self, net, weights: dict):
        from onnx import helper

        self.helper = helper
        self.net = net
        self.weights = weights
        self.nodes: list = []
        self.initializers: list = []
        self.doc = ""

    def init(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def emit(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], name=output, doc_string=self.doc, **attrs))
        return output

    def q(self, tensor: str) -> str:
        """The int8 tensor: named by the IR tensor (the network input's int8 copy: input/int8)."""
        return f"{tensor}/int8" if tensor == self.net.graph.input_name else tensor

    def x(self, tensor: str) -> str:
        """The dequantized (float) value of an int8 tensor."""
        return f"{tensor}/dq"

    def qdq(self, tensor: str, value: str, params) -> None:
        """`value` (float) quantized to `tensor` (int8, named by the IR tensor) and dequantized."""
        s = self.init(f"{tensor}/scale", np.array(float(params.scale), np.float32).reshape(()))
        z = self.init(f"{tensor}/zero_point", np.array(int(params.zero_point), np.int8).reshape(()))
        self.emit("QuantizeLinear", [value, s, z], self.q(tensor))
        self.emit("DequantizeLinear", [self.q(tensor), s, z], self.x(tensor))

    def weight(self, q) -> tuple[str, str]:
        """(dequantized weight, dequantized bias) of a conv / fc step."""
        node, arr = q.main, q.arrays
        w, b = arr["weight"], arr["bias"]
        ws = np.broadcast_to(np.asarray(self.weights[node.param_key("weight_scale")], np.float32), (w.shape[0],))
        name = node.param_key("weight")
        wq = self.init(name, np.asarray(w, np.int8))
        wsn = self.init(f"{name}/scale", ws)
        wz = self.init(f"{name}/zero_point", np.zeros(ws.shape, np.int8))
        wd = self.emit("DequantizeLinear", [wq, wsn, wz], f"{name}/dq", axis=0)
        bname = node.param_key("bias")
        bq = self.init(bname, np.asarray(b, np.int32))
        bsn = self.init(f"{bname}/scale", (np.float32(q.ins[0].scale) * ws).astype(np.float32))
        bz = self.init(f"{bname}/zero_point", np.zeros(ws.shape, np.int32))
        bd = self.emit("DequantizeLinear", [bq, bsn, bz], f"{bname}/dq", axis=0)
        return wd, bd

    def activation(self, q, value: str) -> str:
        """The fused ReLU / ReLU6 as a float op before the output's QuantizeLinear (ORT fuses it)."""
        act = q.step.activation
        if act is None:
            return value
        if act.op.name == "relu":
            return self.emit("Relu", [value], f"{q.output}/relu")
        lo = self.init(f"{q.output}/clip_lo", np.array(0.0, np.float32))
        hi = self.init(f"{q.output}/clip_hi", np.array(6.0, np.float32))
        return self.emit("Clip", [value, lo, hi], f"{q.output}/relu6")


# ---------------------------------------------------------------- lowerings: one per int8 kernel kind

def _conv(e: QEmitter, q) -> None:
    a = q.attrs
    w, b = e.weight(q)
    y = e.emit("Conv", [e.x(q.inputs[0]), w, b], f"{q.output}/conv", kernel_shape=list(a["kernel"]),
               strides=list(a["stride"]), pads=list(a["pads"]), group=int(a.get("groups", 1)), dilations=[1, 1])
    e.qdq(q.output, e.activation(q, y), q.out)


def _fc(e: QEmitter, q) -> None:
    w, b = e.weight(q)
    flat = e.emit("Flatten", [e.x(q.inputs[0])], f"{q.output}/flat", axis=1)
    y = e.emit("Gemm", [flat, w, b], f"{q.output}/gemm", transB=1)
    axes = e.init(f"{q.output}/axes", np.array([2, 3], np.int64))
    y = e.emit("Unsqueeze", [y, axes], f"{q.output}/nc11")
    e.qdq(q.output, e.activation(q, y), q.out)


def _add(e: QEmitter, q) -> None:
    y = e.emit("Add", [e.x(t) for t in q.inputs], f"{q.output}/add")
    e.qdq(q.output, e.activation(q, y), q.out)


def _concat(e: QEmitter, q) -> None:
    y = e.emit("Concat", [e.x(t) for t in q.inputs], f"{q.output}/concat", axis=1)
    e.qdq(q.output, y, q.out)


def _pool(kind: str) -> Callable[[QEmitter, object], None]:
    def lower(e: QEmitter, q) -> None:
        n, a = q.main, q.attrs
        x = n.in_shapes[0]
        whole = tuple(a.get("kernel", ())) == (x.h, x.w) and not any(a.get("pads", (0,)))
        if n.attrs.is_global or whole:  # one window over the map (ORT fuses this form into QLinear)
            y = e.emit(f"Global{kind}Pool", [e.x(q.inputs[0])], f"{q.output}/pool")
        else:
            extra = {"count_include_pad": 0} if kind == "Average" else {}
            y = e.emit(f"{kind}Pool", [e.x(q.inputs[0])], f"{q.output}/pool", kernel_shape=list(a["kernel"]),
                       strides=list(a["stride"]), pads=list(a["pads"]), **extra)
        e.qdq(q.output, e.activation(q, y), q.out)
    return lower


def _softmax(e: QEmitter, q) -> None:
    y = e.emit("Softmax", [e.x(q.inputs[0])], f"{q.output}/softmax", axis=1)
    e.qdq(q.output, y, q.out)


def _clamp(e: QEmitter, q) -> None:
    op = q.main.op.name
    if op == "relu":
        y = e.emit("Relu", [e.x(q.inputs[0])], f"{q.output}/relu")
    else:
        lo = e.init(f"{q.output}/clip_lo", np.array(0.0, np.float32))
        hi = e.init(f"{q.output}/clip_hi", np.array(6.0, np.float32))
        y = e.emit("Clip", [e.x(q.inputs[0]), lo, hi], f"{q.output}/relu6")
    e.qdq(q.output, y, q.out)


def _reshape(e: QEmitter, q) -> None:
    """A view: the same int8 values, (N, C*H*W, 1, 1)."""
    c, h, w = q.out_shape.chw
    shape = e.init(f"{q.output}/shape", np.array([-1, c, h, w], np.int64))
    e.emit("Reshape", [e.q(q.inputs[0]), shape], q.output)
    e.emit("Reshape", [e.x(q.inputs[0]), shape], e.x(q.output))


INT8_LOWERINGS: dict[str, Callable[[QEmitter, object], None]] = {
    "conv": _conv,
    "fc": _fc,
    "add": _add,
    "concat": _concat,
    "avgpool": _pool("Average"),
    "maxpool": _pool("Max"),
    "softmax": _softmax,
    "clamp": _clamp,
    "reshape": _reshape,
}


def build_model(graph, weights: dict):
    """The QDQ ModelProto of an int8 weight dict (quant/weights_file.py)."""
    import onnx
    from onnx import TensorProto, helper

    from .. import __version__
    from ..errors import ArchError
    from ..quant.network import QuantizedNetwork

    net = QuantizedNetwork.build(graph, weights)
    e = QEmitter(net, weights)
    e.qdq(graph.input_name, INPUT, net.input)
    for q in net.steps:
        lower = INT8_LOWERINGS.get(q.kind)
        if lower is None:
            raise ArchError(f"the onnx target has no int8 lowering for '{q.kind}' (layer {q.main.name})")
        row = q.main.row
        e.doc = f"{_source_name(graph)}:{row.line}: {' '.join(row.text.split())} | int8 out {q.out}"
        lower(e, q)
    e.emit("Identity", [e.x(net.steps[-1].output)], OUTPUT)

    def value_info(name: str, shape) -> "onnx.ValueInfoProto":
        c, h, w = shape.chw
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, c, h, w])

    params = params_text(graph.params)
    g = helper.make_graph(e.nodes, graph.name, [value_info(INPUT, graph.input_shape)],
                          [value_info(OUTPUT, graph.output_shape)], initializer=e.initializers,
                          doc_string=f"{graph.name}({params}) int8 (QDQ) from {_source_name(graph)}; NCHW, "
                                     f"batch dimension {BATCH}")
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="archdsl", producer_version=__version__,
                              doc_string=f"{graph.name} int8, compiled from {_source_name(graph)}")
    helper.set_model_props(model, {"archdsl.network": graph.name, "archdsl.spec": _source_name(graph),
                                   "archdsl.params": params, "archdsl.layout": "NCHW",
                                   "archdsl.int8": "qdq", "archdsl.output_node": graph.output})
    return model
