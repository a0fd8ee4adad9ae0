"""ONNX models (.onnx), float, read with the `onnx` package.

Nodes are listed in topological order. Weights are initializers (or Constant nodes): Conv
(O, I/group, kh, kw), already the IR layout; Gemm (out, in) with transB=1, else (in, out);
MatMul followed by an Add of a constant is a dense layer with a bias. BatchNormalization nodes
map one to one; a graph without them (tflite2onnx output, a graph exported after folding) is
imported with BN folded, like a .tflite. A dense layer after a multi-pixel map flattens in C, H, W
order unless the graph transposes to NHWC first. QDQ and QLinear graphs are refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArchError
from ..inputs import DEFAULT_LIMIT, onnx_array, onnx_model
from .structure import ModelGraph, ModelOp, ModelTensor, conv_kind, format_names

FORMAT = "ONNX"

QUANTIZED = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
             "MatMulInteger", "DynamicQuantizeLinear", "QLinearAdd")
QUANTIZED_HINT = "quantized models are not supported; export or convert the float model"


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ArchError("reading .onnx files needs the Python package 'onnx'", None,
                        "pip install 'archdsl[onnx]'") from None
    return onnx, numpy_helper


class _Reader:
    def __init__(self, path: Path, limit: int):
        onnx, self.nh = _onnx()
        self.model = onnx_model(path, limit)
        self.graph = self.model.graph
        self.consts: dict[str, np.ndarray] = {i.name: onnx_array(i) for i in self.graph.initializer}
        self.ops: list[ModelOp] = []
        self.producer: dict[str, ModelOp] = {}
        self.uses: dict[str, int] = {}
        for node in self.graph.node:
            for t in node.input:
                self.uses[t] = self.uses.get(t, 0) + 1
        self.flatten = "chw"
        self.input_nhwc = False

    def attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def param(self, name: str, layout: str, where: str) -> ModelTensor:
        arr = self.consts.get(name)
        if arr is None:
            raise ArchError(f"{where}: its weight '{name}' is computed at run time, not stored", None,
                            "the importer reads weights stored as initializers")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ArchError(f"{where}: its weight '{name}' is {arr.dtype}", None, QUANTIZED_HINT)
        return ModelTensor(name, np.asarray(arr, dtype=np.float32), layout)

    def acts(self, node) -> list[str]:
        return [t for t in node.input if t and t not in self.consts]

    def emit(self, name, label, kind, ins, out, **fields) -> ModelOp:
        op = ModelOp(name, label, kind, list(ins), out, **fields)
        self.ops.append(op)
        self.producer[out] = op
        return op

    def read(self) -> ModelGraph:
        for i, node in enumerate(self.graph.node):
            where = f"ONNX node #{i} {node.op_type}" + (f" '{node.name}'" if node.name else "")
            if node.op_type in QUANTIZED:
                raise ArchError(f"{where}: the model is quantized", None, QUANTIZED_HINT)
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                raise ArchError(f"{where} is not supported by the importer", None,
                                "supported: " + ", ".join(sorted(HANDLERS)))
            handler(self, node, node.name or f"#{i}", where)
        inputs = [v for v in self.graph.input if v.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise ArchError(f"the model has {len(inputs)} inputs and {len(self.graph.output)} outputs; "
                            "the importer reads single-input, single-output models")
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
        hwc = None
        if len(dims) == 4 and all(d > 0 for d in dims[1:]):
            hwc = (dims[1], dims[2], dims[3]) if self.input_nhwc else (dims[2], dims[3], dims[1])
        return ModelGraph(FORMAT, self.ops, inputs[0].name, self.graph.output[0].name, hwc, self.flatten)


def _conv(r: _Reader, node, name, where):
    a = r.attrs(node)
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ArchError(f"{where}: dilated convolutions are not supported")
    w = r.param(node.input[1], "OIHW", where)
    params = {"weight": w}
    if len(node.input) > 2 and node.input[2]:
        params["bias"] = r.param(node.input[2], "C", where)
    group = int(a.get("group", 1))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto == "SAME_UPPER":
        padding = "same"
    elif auto == "VALID":
        padding = (0, 0, 0, 0)
    elif auto == "NOTSET":
        p = list(a.get("pads", [0, 0, 0, 0]))
        padding = (p[0], p[1], p[2], p[3]) if len(p) == 4 else None
    else:
        padding = None  # SAME_LOWER: not checked
    stride = tuple(a.get("strides", [1, 1]))
    kind = conv_kind(group, w.array.shape[1] * group if w.array.ndim == 4 else None)
    r.emit(name, "Conv", kind, r.acts(node)[:1], node.output[0], params=params,
           stride=(int(stride[0]), int(stride[1])), padding=padding)


def _bn(r: _Reader, node, name, where):
    a = r.attrs(node)
    params = {local: r.param(t, "C", where)
              for local, t in zip(("weight", "bias", "running_mean", "running_var"), node.input[1:5])}
    r.emit(name, "BatchNormalization", "bn", r.acts(node)[:1], node.output[0], params=params,
           eps=float(a.get("epsilon", 1e-5)))


def _gemm(r: _Reader, node, name, where):
    a = r.attrs(node)
    if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
        raise ArchError(f"{where}: Gemm with transA, alpha or beta is not supported")
    params = {"weight": r.param(node.input[1], "OI" if a.get("transB", 0) else "IO", where)}
    if len(node.input) > 2 and node.input[2]:
        params["bias"] = r.param(node.input[2], "C", where)
        params["bias"] = ModelTensor(params["bias"].name, params["bias"].array.reshape(-1), "C")
    r.emit(name, "Gemm", "dense", r.acts(node)[:1], node.output[0], params=params)


def _matmul(r: _Reader, node, name, where):
    r.emit(name, "MatMul", "dense", r.acts(node)[:1], node.output[0],
           params={"weight": r.param(node.input[1], "IO", where)})


def _binary(kind: str):
    def handle(r: _Reader, node, name, where):
        acts = r.acts(node)
        if len(acts) == len(node.input):
            r.emit(name, node.op_type, kind, acts, node.output[0])
            return
        # x + constant right after a MatMul or a bias-less Conv: that layer's bias
        src = r.producer.get(acts[0]) if len(acts) == 1 else None
        const = next((r.consts[t] for t in node.input if t in r.consts), None)
        if (kind == "add" and src is not None and src.kind in ("dense", "conv", "dwconv", "gconv")
                and "bias" not in src.params and r.uses.get(acts[0], 0) == 1 and const is not None
                and np.issubdtype(const.dtype, np.floating)):
            out_c = src.params["weight"].array.shape[1 if src.params["weight"].layout == "IO" else 0]
            if const.size == out_c:
                bias_name = next(t for t in node.input if t in r.consts)
                src.params["bias"] = ModelTensor(bias_name, np.asarray(const, np.float32).reshape(-1), "C")
                r.emit(name, node.op_type, "pass", acts, node.output[0])
                return
        raise ArchError(f"{where} has a constant operand, which no spec row expresses", None,
                        "the importer maps Add/Mul/Concat of feature maps, and bias adds after MatMul or Conv")
    return handle


def _concat(r: _Reader, node, name, where):
    if r.attrs(node).get("axis", 1) != 1:
        raise ArchError(f"{where}: concatenation along axis {r.attrs(node).get('axis')}; "
                        "archdsl concatenates channels")
    r.emit(name, "Concat", "concat", r.acts(node), node.output[0])


def _clip(r: _Reader, node, name, where):
    a = r.attrs(node)
    lo, hi = a.get("min"), a.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = float(np.asarray(r.consts.get(node.input[1], np.nan)))
    if len(node.input) > 2 and node.input[2]:
        hi = float(np.asarray(r.consts.get(node.input[2], np.nan)))
    if lo != 0.0 or hi != 6.0:
        raise ArchError(f"{where}: Clip({lo}, {hi}) is not supported; only Clip(0, 6), ReLU6")
    r.emit(name, "Clip", "relu6", r.acts(node)[:1], node.output[0])


def _hard_sigmoid(r: _Reader, node, name, where):
    a = r.attrs(node)
    if not (np.isclose(a.get("alpha", 0.2), 1 / 6) and np.isclose(a.get("beta", 0.5), 0.5)):
        raise ArchError(f"{where}: HardSigmoid(alpha={a.get('alpha', 0.2):g}) is not relu6(x + 3) / 6")
    r.emit(name, "HardSigmoid", "hsigmoid", r.acts(node)[:1], node.output[0])


def _reduce_mean(r: _Reader, node, name, where):
    a = r.attrs(node)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1] in r.consts:
        axes = r.consts[node.input[1]].tolist()
    if sorted(axes or []) != [2, 3]:
        raise ArchError(f"{where}: ReduceMean over axes {axes} is not supported (only 2, 3)")
    r.emit(name, "ReduceMean", "avgpool", r.acts(node)[:1], node.output[0])


def _pad(r: _Reader, node, name, where):
    a = r.attrs(node)
    mode = a.get("mode", b"constant")
    pads = a.get("pads")
    if pads is None and len(node.input) > 1:
        pads = r.consts.get(node.input[1])
    value = r.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else a.get("value", 0.0)
    pads = None if pads is None else [int(p) for p in np.ravel(pads)]
    if (mode not in (b"constant", "constant") or pads is None or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5))
            or float(np.ravel(np.asarray(value if value is not None else 0.0))[0]) != 0.0):
        raise ArchError(f"{where}: only zero padding of height and width is supported")
    r.emit(name, "Pad", "pad", r.acts(node)[:1], node.output[0], pads=(pads[2], pads[3], pads[6], pads[7]))


def _split(r: _Reader, node, name, where):
    """Split along the channels (torchvision's x.chunk(2, dim=1)): one channel split per output."""
    a = r.attrs(node)
    if a.get("axis", 0) != 1:
        raise ArchError(f"{where}: a split along axis {a.get('axis', 0)}; archdsl splits channels (axis 1) only")
    for out in node.output:
        r.emit(name, "Split", "split", r.acts(node)[:1], out)


def _slice(r: _Reader, node, name, where):
    """A slice of the channels (x[:, a:b]): a channel split."""
    axes = r.consts.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = r.consts.get(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if axes is None or [int(v) for v in np.ravel(axes)] != [1] or (steps is not None and np.any(np.ravel(steps) != 1)):
        raise ArchError(f"{where}: only a slice of the channels (axes=[1], step 1) is supported, as a channel split")
    r.emit(name, "Slice", "split", r.acts(node)[:1], node.output[0])


def _transpose(r: _Reader, node, name, where):
    perm = list(r.attrs(node).get("perm", []))
    if len(perm) == 5:
        if perm != [0, 2, 1, 3, 4]:
            raise ArchError(f"{where}: a 5-D Transpose with perm {perm} is not a channel shuffle", None,
                            "the importer reads Reshape-Transpose(0, 2, 1, 3, 4)-Reshape as a channel shuffle")
        r.emit(name, "Transpose", "shuffle", r.acts(node)[:1], node.output[0])  # its Reshapes are views
        return
    if perm == [0, 2, 3, 1]:
        r.flatten = "hwc"  # the graph goes NHWC: a later Flatten sees H, W, C order
    if perm == [0, 3, 1, 2] and node.input[0] in [v.name for v in r.graph.input]:
        r.input_nhwc = True
    r.emit(name, "Transpose", "pass", r.acts(node)[:1], node.output[0])


def _constant(r: _Reader, node, name, where):
    a = r.attrs(node)
    if "value" in a:
        r.consts[node.output[0]] = onnx_array(a["value"])
    elif "value_float" in a or "value_floats" in a:
        r.consts[node.output[0]] = np.asarray(a.get("value_float", a.get("value_floats")), np.float32)
    elif "value_int" in a or "value_ints" in a:
        r.consts[node.output[0]] = np.asarray(a.get("value_int", a.get("value_ints")), np.int64)
    else:
        raise ArchError(f"{where}: a Constant of this kind is not supported")


def _simple(kind: str):
    def handle(r: _Reader, node, name, where):
        r.emit(name, node.op_type, kind, r.acts(node)[:1], node.output[0])
    return handle


HANDLERS = {
    "Conv": _conv,
    "BatchNormalization": _bn,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary("add"),
    "Mul": _binary("mul"),
    "Concat": _concat,
    "Clip": _clip,
    "HardSigmoid": _hard_sigmoid,
    "AveragePool": _simple("avgpool"),
    "GlobalAveragePool": _simple("avgpool"),
    "ReduceMean": _reduce_mean,
    "MaxPool": _simple("maxpool"),
    "GlobalMaxPool": _simple("maxpool"),
    "Reshape": _simple("pass"),
    "Squeeze": _simple("pass"),
    "Unsqueeze": _simple("pass"),
    "Identity": _simple("pass"),
    "Transpose": _transpose,
    "Split": _split,
    "Slice": _slice,
    "Pad": _pad,
    "Constant": _constant,
    **{name: _simple(kind) for name, kind in format_names("onnx").items()},  # activations, softmax, views
}


def read(path, limit: int = DEFAULT_LIMIT) -> ModelGraph:
    """The ModelGraph of a float .onnx model."""
    return _Reader(Path(path), limit).read()
