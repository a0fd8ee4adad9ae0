"""The ONNX target: one `<name>.onnx` file, built node by node with `onnx.helper`.

The model is opset 17 (IR version 8), NCHW, with a dynamic batch dimension "N".
Its input is named `input` and its output `output`. Every IR parameter is an
initializer named by its IR key (`conv3.conv.weight`, `conv3.bn.running_var`) and
the initializers are exactly the IR parameters, so `archdsl.weights.load_weights`
reads an `.onnx` file back by name. BatchNorm stays a BatchNormalization node (so the
keys stay IR keys; ONNX Runtime folds it into the conv when it loads the model).

Naming: the ONNX node that produces an IR node's output tensor carries the IR node's
name, and that tensor is named after it too (the network's last tensor is `output`).
Helper nodes and tensors of a lowering are named `<ir node>/<what>` and constants
`const/<what>`; a `/` never occurs in an IR name, so `run_layers` can tell them apart.
Each node's doc_string holds the spec line it came from, its output shape and mult-adds.

The bytes are deterministic: same graph and weights, same file.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ArchError
from .. import ops
from ..ir import Graph, Node
from .common import check_batch, lowering_for, params_text
from .codetext import plain, source_label

NAME = "onnx"
EXTRA = "onnx"
INT8 = True  # int8 weight dicts compile to a QDQ graph (onnx_int8.py)
INT8_EXACT = False  # ONNX Runtime's integer kernels requantize in float: close to TFLite, not equal
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17: readable by every runtime that knows the opset
INPUT = "input"
OUTPUT = "output"
BATCH = "N"


def unavailable() -> str | None:
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the onnx target needs {' and '.join(missing)}: pip install 'archdsl[onnx]'"
    return None


# ---------------------------------------------------------------- building the graph


class Emitter:
    """Collects ONNX nodes and initializers for one graph; lowerings call it."""

    def __init__(self, graph: Graph, weights: dict[str, np.ndarray]):
        from onnx import helper

        self.helper = helper
        self.graph = graph
        self.weights = weights
        self.nodes: list = []
        self.initializers: list = []
        self._params: set[str] = set()
        self._consts: set[str] = set()
        self._doc = ""

    # tensor names
    def tensor(self, ir_name: str) -> str:
        return OUTPUT if ir_name == self.graph.output else ir_name

    def inputs(self, node: Node) -> list[str]:
        return [self.tensor(t) for t in node.inputs]

    def out(self, node: Node) -> str:
        return self.tensor(node.name)

    # initializers: IR parameters only, named by their IR keys
    def param(self, node: Node, local: str) -> str:
        from onnx import numpy_helper

        key = node.param_key(local)
        if key not in self._params:
            arr = np.ascontiguousarray(self.weights[key], dtype=np.float32)
            self.initializers.append(numpy_helper.from_array(arr, key))
            self._params.add(key)
        return key

    def const(self, what: str, value: np.ndarray) -> str:
        """A constant that is not a weight (clip bounds, axes): a Constant node, emitted once."""
        from onnx import numpy_helper

        name = f"const/{what}"
        if name not in self._consts:
            self.nodes.append(self.helper.make_node("Constant", [], [name], name=name,
                                                    value=numpy_helper.from_array(np.asarray(value), name)))
            self._consts.add(name)
        return name

    def emit(self, op_type: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], name=name,
                                                doc_string=self._doc, **attrs))
        return output

    def final(self, node: Node, op_type: str, inputs: list[str], **attrs) -> str:
        """The node that produces `node`'s output tensor."""
        return self.emit(op_type, inputs, self.out(node), node.name, **attrs)

    def step(self, node: Node, what: str, op_type: str, inputs: list[str], **attrs) -> str:
        """A helper node inside a lowering; its output is `<node>/<what>`."""
        name = f"{node.name}/{what}"
        return self.emit(op_type, inputs, name, name, **attrs)


def _source_name(graph: Graph) -> str:
    return plain(source_label(graph.source_name))


def _doc_for(graph: Graph, node: Node) -> str:
    text = " ".join(node.row.text.split())
    doc = plain(f"{_source_name(graph)}:{node.row.line}: {text} | out {node.out_shape}")
    return doc + (f", {node.macs} mult-adds" if node.macs else "")


# ---------------------------------------------------------------- lowerings (one per op)


def _conv(e: Emitter, n: Node) -> None:
    a = n.attrs
    ins = e.inputs(n) + [e.param(n, "weight")] + ([e.param(n, "bias")] if "bias" in n.params else [])
    e.final(n, "Conv", ins, kernel_shape=list(a.kernel), strides=list(a.stride),
            pads=list(a.pads), group=int(a.groups), dilations=[1, 1])


def _bn(e: Emitter, n: Node) -> None:
    ins = e.inputs(n) + [e.param(n, k) for k in ("weight", "bias", "running_mean", "running_var")]
    e.final(n, "BatchNormalization", ins, epsilon=float(n.attrs.eps))


def _pool(kind: str) -> Callable[[Emitter, Node], None]:
    def lower(e: Emitter, n: Node) -> None:
        a = n.attrs
        if a.is_global:
            e.final(n, f"Global{kind}Pool", e.inputs(n))
            return
        # the pool op guarantees padding smaller than the window, as ONNX requires
        extra = {"count_include_pad": 0} if kind == "Average" else {}
        e.final(n, f"{kind}Pool", e.inputs(n), kernel_shape=list(a.kernel), strides=list(a.stride),
                pads=list(a.pads), **extra)
    return lower


def _to_nc11(e: Emitter, n: Node, flat: str) -> None:
    """(N, F) -> (N, F, 1, 1): the IR keeps every tensor H x W x C."""
    e.final(n, "Unsqueeze", [flat, e.const("axes_hw", np.array([2, 3], dtype=np.int64))])


def _flatten(e: Emitter, n: Node) -> None:
    _to_nc11(e, n, e.step(n, "flat", "Flatten", e.inputs(n), axis=1))  # C, H, W order


def _fc(e: Emitter, n: Node) -> None:
    flat = e.step(n, "flat", "Flatten", e.inputs(n), axis=1)
    ins = [flat, e.param(n, "weight")] + ([e.param(n, "bias")] if "bias" in n.params else [])
    _to_nc11(e, n, e.step(n, "gemm", "Gemm", ins, transB=1))


def _simple(op_type: str, **attrs) -> Callable[[Emitter, Node], None]:
    def lower(e: Emitter, n: Node) -> None:
        e.final(n, op_type, e.inputs(n), **attrs)
    return lower


def _relu6(e: Emitter, n: Node) -> None:
    lo = e.const("zero", np.array(0.0, dtype=np.float32))
    hi = e.const("six", np.array(6.0, dtype=np.float32))
    e.final(n, "Clip", e.inputs(n) + [lo, hi])


def _split(e: Emitter, n: Node) -> None:
    first, end = n.attrs.channel_range(n.in_shapes[0].c)
    i64 = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
    e.final(n, "Slice", e.inputs(n) + [e.const(f"c{first}", i64(first)), e.const(f"c{end}", i64(end)),
                                       e.const("c1", i64(1))])


def _shuffle(e: Emitter, n: Node) -> None:
    """Reshape to (N, g, C/g, H, W), swap the two channel axes, reshape back: the pattern
    torch.onnx writes for torchvision's channel_shuffle (the ONNX importer reads it back)."""
    g, x = n.attrs.groups, n.in_shapes[0]
    grouped = e.const(f"shape_{g}x{x.c // g}x{x.h}x{x.w}", np.array([0, g, x.c // g, x.h, x.w], dtype=np.int64))
    flat = e.const(f"shape_{x.c}x{x.h}x{x.w}", np.array([0, x.c, x.h, x.w], dtype=np.int64))
    y = e.step(n, "grouped", "Reshape", e.inputs(n) + [grouped])
    y = e.step(n, "transposed", "Transpose", [y], perm=[0, 2, 1, 3, 4])
    e.final(n, "Reshape", [y, flat])


LOWERINGS: dict[type, Callable[[Emitter, Node], None]] = {
    ops.Conv: _conv,
    ops.ConvDW: _conv,  # groups == Cin is in the attrs
    ops.BatchNorm: _bn,
    ops.ReLU: _simple("Relu"),
    ops.ReLU6: _relu6,
    ops.Sigmoid: _simple("Sigmoid"),
    ops.HardSigmoid: _simple("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),  # relu6(x + 3) / 6
    ops.HardSwish: _simple("HardSwish"),
    ops.SiLU: lambda e, n: e.final(n, "Mul", e.inputs(n) + [e.step(n, "sigmoid", "Sigmoid", e.inputs(n))]),  # opset 17 has no SiLU
    ops.Softmax: _simple("Softmax", axis=1),  # over channels
    ops.AvgPool: _pool("Average"),
    ops.MaxPool: _pool("Max"),
    ops.GlobalAvgPool: _pool("Average"),
    ops.GlobalMaxPool: _pool("Max"),
    ops.FC: _fc,
    ops.Flatten: _flatten,
    ops.Dropout: _simple("Identity"),  # identity at inference
    ops.Add: _simple("Add"),
    ops.Mul: _simple("Mul"),  # the 1x1xC gate broadcasts over H x W
    ops.Concat: _simple("Concat", axis=1),
    ops.ChannelSplit: _split,
    ops.ChannelShuffle: _shuffle,
}


def build_model(graph: Graph, weights: dict[str, np.ndarray]):
    """The ONNX ModelProto for `graph` with `weights` (checked against the graph first)."""
    import onnx
    from onnx import TensorProto, helper

    from .. import __version__
    from ..weights import check_weights

    weights = check_weights(weights, graph, "the weights")
    e = Emitter(graph, weights)
    for node in graph.nodes:
        lower = lowering_for(LOWERINGS, node.op, "onnx", node.name)
        e._doc = _doc_for(graph, node)
        lower(e, node)
    if not graph.nodes:  # a network of no layers (a repeat n=0): the output is the input
        e.nodes.append(helper.make_node("Identity", [INPUT], [OUTPUT], name="identity"))

    def value_info(name: str, shape) -> "onnx.ValueInfoProto":
        c, h, w = shape.chw
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, c, h, w])

    params = params_text(graph.params)
    g = helper.make_graph(
        e.nodes, graph.name,
        [value_info(INPUT, graph.input_shape)],
        [value_info(OUTPUT, graph.output_shape)],
        initializer=e.initializers,
        doc_string=f"{graph.name}({params}) from {_source_name(graph)}; NCHW, batch dimension {BATCH}",
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="archdsl", producer_version=__version__,
                              doc_string=f"{graph.name}, compiled from {_source_name(graph)}")
    meta = {
        "archdsl.network": graph.name,
        "archdsl.spec": _source_name(graph),
        "archdsl.params": params,
        "archdsl.width_rule": graph.width_rule,
        "archdsl.layout": "NCHW",
        "archdsl.output_node": graph.output,
    }
    helper.set_model_props(model, meta)
    return model


def model_bytes(graph: Graph, weights: dict[str, np.ndarray]) -> bytes:
    from ..quant.weights_file import is_int8_dict

    if is_int8_dict(weights):
        from .onnx_int8 import build_model as build_int8

        return build_int8(graph, weights).SerializeToString(deterministic=True)
    return build_model(graph, weights).SerializeToString(deterministic=True)


def compile(graph: Graph, weights: dict[str, np.ndarray], outdir, name: str) -> list[Path]:
    """Write `<outdir>/<name>.onnx`."""
    from ..fsutil import write_files_atomically

    return write_files_atomically(outdir, {f"{name}.onnx": model_bytes(graph, weights)})


# ---------------------------------------------------------------- running (ONNX Runtime)


def _model_path(outdir, name: str) -> Path:
    path = Path(outdir) / f"{name}.onnx"
    if not path.is_file():
        raise ArchError(f"no ONNX model at {path}", None, "write it first: archdsl compile --target onnx")
    return path


def _session(model):
    """A one-thread, sequential ONNX Runtime session (the same numbers on every run)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ArchError("running an ONNX model needs onnxruntime", None, "pip install 'archdsl[onnx]'") from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 4  # failures are reported as diagnostics, not log lines
    if hasattr(so, "use_deterministic_compute"):
        so.use_deterministic_compute = True
    try:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for unreadable models
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ArchError(f"ONNX Runtime cannot load the model: {first}") from None


def _feed(sess, x) -> dict:
    return {INPUT: check_batch(x, sess.get_inputs()[0].shape[1:], batch_only=True)}  # ["N", C, H, W]


def run(outdir, name: str, x: np.ndarray) -> np.ndarray:
    """Run `<outdir>/<name>.onnx` on an NCHW float32 batch; returns the (N, C, H, W) output."""
    sess = _session(str(_model_path(outdir, name)))
    return sess.run([OUTPUT], _feed(sess, x))[0]


def run_layers(outdir, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """{IR node name: its output} for every layer: runs an in-memory copy of the model in which
    every IR node's output tensor is also a graph output."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(_model_path(outdir, name)))
    outputs = {o.name for o in model.graph.output}
    layers = {n.name: n.output[0] for n in model.graph.node if "/" not in n.name}
    # an int8 (QDQ) model's layers are its int8 tensors (onnx_int8.py)
    int8 = any(p.key == "archdsl.int8" for p in model.metadata_props)
    for tensor in layers.values():
        if tensor not in outputs:
            elem = TensorProto.INT8 if int8 else TensorProto.FLOAT
            model.graph.output.append(helper.make_tensor_value_info(tensor, elem, None))
            outputs.add(tensor)
    sess = _session(model.SerializeToString())
    names = list(layers)
    values = sess.run([layers[k] for k in names], _feed(sess, x))
    return dict(zip(names, values))
