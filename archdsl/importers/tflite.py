"""TFLite flatbuffers (.tflite), float models, read with the `tflite` package (the schema's Python reader).

Operators are listed in execution order. Weights: CONV_2D (O, kh, kw, I), DEPTHWISE_CONV_2D
(1, kh, kw, C·m), FULLY_CONNECTED (out, in); BatchNorm is always folded into the conv before it.
Fused activations (RELU, RELU6) become ops of their own; float16 weights behind DEQUANTIZE are
widened to float32.

Quantized models: a full-int8 model (int8 input, activations, per-channel weights, int32 biases)
reads as a QuantModelGraph: the float view the structural matcher aligns (each weight dequantized,
real = scale · (q − zero point)) plus every tensor's quantization (`quant`) and the raw integer
weights (QuantTensor). A model with float input and output around an int8 network (QUANTIZE of the input, DEQUANTIZE
of the output) reads the same way, `int8_input` naming the int8 tensor. A dynamic-range model
(int8 weights, float activations) reads as a float model with its weights dequantized
(`dequantized_weights` counts them). uint8 models are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArchError
from ..inputs import DEFAULT_LIMIT, read_bytes
from .structure import ModelGraph, ModelOp, ModelTensor, format_names

FORMAT = "TFLite"

QUANTIZED = "this kind of quantized model is not supported"
QUANTIZED_HINT = ("archdsl reads float models, full-int8 models (int8 input, per-channel int8 weights) and "
                  "dynamic-range models (int8 weights, float activations)")


@dataclass(frozen=True)
class TensorQuant:
    """A tensor's quantization as stored: scales, zero points, and the quantized axis."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int


@dataclass
class QuantTensor(ModelTensor):
    """A quantized constant: `array` is the dequantized float view, `raw` the stored integers."""

    raw: np.ndarray | None = None
    quant: TensorQuant | None = None


@dataclass
class QuantModelGraph(ModelGraph):
    """A full-int8 model: the float view plus every activation tensor's quantization."""

    quant: dict[str, TensorQuant] = field(default_factory=dict)   # "t<index>" -> quantization
    tensor_names: dict[str, str] = field(default_factory=dict)    # "t<index>" -> the model's name
    types: dict[str, str] = field(default_factory=dict)           # "t<index>" -> INT8, FLOAT32, ...
    int8_input: str | None = None  # float input: the int8 tensor its QUANTIZE writes (the int8 network's input)


def _fb():
    try:
        import tflite
    except ImportError:
        raise ArchError("reading .tflite files needs the Python package 'tflite'", None,
                        "pip install 'archdsl[import]'") from None
    return tflite


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


class _Reader:
    def __init__(self, path: Path, limit: int):
        self.fb = fb = _fb()
        self.buf = read_bytes(path, limit, "model file")
        if len(self.buf) < 8 or self.buf[4:8] != b"TFL3":
            raise ArchError(f"{path.name} is not a TFLite model (no TFL3 identifier)", None,
                            "models are .tflite, .h5 (Keras) or .onnx")
        try:
            self.model = fb.Model.GetRootAsModel(self.buf, 0)
            if self.model.SubgraphsLength() < 1:
                raise ArchError(f"{path.name} has no subgraph")
            self.sg = self.model.Subgraphs(0)
        except ArchError:
            raise
        except Exception as e:  # a damaged flatbuffer
            raise ArchError(f"{path.name} is not a readable TFLite model ({type(e).__name__})") from None
        self.op_names = _names(fb.BuiltinOperator)
        self.type_names = _names(fb.TensorType)
        self.consts: dict[int, np.ndarray] = {}
        self.ops: list[ModelOp] = []
        self.dequantized_weights = 0  # int8 / int32 constants read as float

    # ------------------------------------------------------------ tensors
    def tname(self, t: int) -> str:
        return self.sg.Tensors(t).Name().decode("utf-8", "replace")

    def tshape(self, t: int) -> tuple[int, ...]:
        shape = self.sg.Tensors(t).ShapeAsNumpy()
        return tuple(int(d) for d in shape) if not isinstance(shape, int) else ()

    def ttype(self, t: int) -> str:
        return self.type_names.get(self.sg.Tensors(t).Type(), "?")

    def quant(self, t: int) -> TensorQuant | None:
        q = self.sg.Tensors(t).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        zps = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
        return TensorQuant(tuple(float(v) for v in np.atleast_1d(q.ScaleAsNumpy())),
                           tuple(int(v) for v in np.atleast_1d(zps)), int(q.QuantizedDimension()))

    def dequantized(self, t: int, raw: np.ndarray) -> np.ndarray:
        """scale · (q − zero point) in float32, per channel along the quantized axis."""
        q = self.quant(t)
        if q is None:
            raise ArchError(f"tensor '{self.tname(t)}' is {self.ttype(t)} without quantization parameters",
                            None, QUANTIZED_HINT)
        shape = [1] * raw.ndim
        if len(q.scales) > 1:
            if raw.ndim == 0 or not 0 <= q.axis < raw.ndim or raw.shape[q.axis] != len(q.scales):
                raise ArchError(f"tensor '{self.tname(t)}': {len(q.scales)} scales do not fit its shape "
                                f"{tuple(raw.shape)} along axis {q.axis}")
            shape[q.axis] = -1
        scales = np.asarray(q.scales, np.float32).reshape(shape)
        zps = np.asarray(q.zero_points, np.float32).reshape(shape if len(q.zero_points) > 1 else [1] * raw.ndim)
        return (scales * (raw.astype(np.float32) - zps)).astype(np.float32)

    def const(self, t: int) -> np.ndarray | None:
        """The constant value of tensor t, or None for an activation."""
        if t in self.consts:
            return self.consts[t]
        tensor = self.sg.Tensors(t)
        buffer = self.model.Buffers(tensor.Buffer())
        data = buffer.DataAsNumpy()
        raw = None
        if not isinstance(data, int) and data.size:
            raw = data.tobytes()
        elif buffer.Offset() > 1 and buffer.Size():  # a buffer stored after the flatbuffer
            raw = self.buf[buffer.Offset(): buffer.Offset() + buffer.Size()]
        if raw is None:
            return None
        dtypes = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64,
                  "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}
        dtype = dtypes.get(self.ttype(t))
        if dtype is None:
            raise ArchError(f"tensor '{self.tname(t)}' has type {self.ttype(t)}, which the importer cannot read",
                            None, f"{QUANTIZED}; {QUANTIZED_HINT}")
        arr = np.frombuffer(raw, dtype=dtype).reshape(self.tshape(t))
        self.consts[t] = arr
        return arr

    def param(self, t: int, layout: str) -> ModelTensor:
        arr = self.const(t)
        name = self.tname(t)
        if arr is None:
            raise ArchError(f"tensor '{name}' is computed at run time, not a stored weight", None,
                            "the importer reads weights stored as constants")
        if arr.dtype in (np.int8, np.int32):
            self.dequantized_weights += 1
            return QuantTensor(name, self.dequantized(t, arr), layout, raw=arr, quant=self.quant(t))
        if arr.dtype not in (np.float32, np.float16):
            raise ArchError(f"{QUANTIZED} (the weight '{name}' is {self.ttype(t)})", None, QUANTIZED_HINT)
        return ModelTensor(name, arr.astype(np.float32), layout)

    # ------------------------------------------------------------ ops
    def options(self, op, cls_name: str):
        table = op.BuiltinOptions()
        if table is None:
            return None
        opts = getattr(self.fb, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def activation(self, code: int, where: str) -> str | None:
        acts = self.fb.ActivationFunctionType
        if code == acts.NONE:
            return None
        if code == acts.RELU:
            return "relu"
        if code == acts.RELU6:
            return "relu6"
        raise ArchError(f"{where}: fused activation {_names(acts).get(code, code)} is not supported")

    def emit(self, label: str, name: str, kind: str, inputs: list[int], output: int,
             act: str | None = None, **fields) -> None:
        out = f"t{output}"
        if act is None:
            self.ops.append(ModelOp(name, label, kind, [f"t{i}" for i in inputs], out, **fields))
            return
        self.ops.append(ModelOp(name, label, kind, [f"t{i}" for i in inputs], out + "#pre", **fields))
        self.ops.append(ModelOp(name, f"{label} fused {act.upper()}", act, [out + "#pre"], out))

    def read(self) -> ModelGraph:
        sg = self.sg
        if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
            raise ArchError(f"the model has {sg.InputsLength()} inputs and {sg.OutputsLength()} outputs; "
                            "the importer reads single-input, single-output models")
        tin, tout = sg.Inputs(0), sg.Outputs(0)
        if self.ttype(tin) not in ("FLOAT32", "INT8"):
            raise ArchError(f"{QUANTIZED} (the model's input is {self.ttype(tin)}, not FLOAT32 or INT8)", None,
                            QUANTIZED_HINT)
        int8 = self.ttype(tin) == "INT8"
        self.graph_input = tin
        self.boundary_input = None  # the int8 tensor a QUANTIZE of a float input writes
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code_rec = self.model.OperatorCodes(op.OpcodeIndex())
            code = max(code_rec.BuiltinCode(), code_rec.DeprecatedBuiltinCode())
            label = self.op_names.get(code, f"op{code}")
            ins = [op.Inputs(k) for k in range(op.InputsLength())]
            outs = [op.Outputs(k) for k in range(op.OutputsLength())]
            handler = HANDLERS.get(label)
            if handler is None:
                raise ArchError(f"TFLite operator #{i} {label} is not supported by the importer", None,
                                "supported: " + ", ".join(sorted(HANDLERS)))
            handler(self, op, f"{label} #{i}", ins, outs)
        shape = self.tshape(tin)
        hwc = tuple(shape[1:]) if len(shape) == 4 else None
        if not int8 and self.boundary_input is None:
            graph = ModelGraph(FORMAT, self.ops, f"t{tin}", f"t{tout}", hwc, flatten="hwc")
            graph.dequantized_weights = self.dequantized_weights
            return graph
        tensors = range(sg.TensorsLength())
        return QuantModelGraph(FORMAT, self.ops, f"t{tin}", f"t{tout}", hwc, flatten="hwc",
                               quant={f"t{t}": q for t in tensors if (q := self.quant(t)) is not None},
                               tensor_names={f"t{t}": self.tname(t) for t in tensors},
                               types={f"t{t}": self.ttype(t) for t in tensors},
                               int8_input=f"t{self.boundary_input}" if self.boundary_input is not None else None)

    def name_of(self, ins: list[int], outs: list[int]) -> str:
        if len(ins) > 1 and ins[1] >= 0:
            return self.tname(ins[1])
        return self.tname(outs[0])

    def acts_in(self, ins: list[int]) -> list[int]:
        """The activation inputs (not constants) of an op."""
        return [t for t in ins if t >= 0 and self.const(t) is None]


def _conv(r: _Reader, op, label, ins, outs):
    dw = label.startswith("DEPTHWISE")
    o = r.options(op, "DepthwiseConv2DOptions" if dw else "Conv2DOptions")
    if o.DilationHFactor() not in (0, 1) or o.DilationWFactor() not in (0, 1):
        raise ArchError(f"{label}: dilated convolutions are not supported")
    params = {"weight": r.param(ins[1], "1HWC" if dw else "OHWI")}
    if len(ins) > 2 and ins[2] >= 0:
        params["bias"] = r.param(ins[2], "C")
    w = params["weight"].array
    if dw:
        kind = "dwconv"
    else:
        cin = r.tshape(ins[0])[-1] if r.tshape(ins[0]) else None
        groups = cin // w.shape[3] if cin and w.shape[3] and cin % w.shape[3] == 0 else 1
        from .structure import conv_kind

        kind = conv_kind(groups, cin)
    padding = "same" if o.Padding() == r.fb.Padding.SAME else (0, 0, 0, 0)
    r.emit(label, r.name_of(ins, outs), kind, r.acts_in(ins[:1]), outs[0],
           r.activation(o.FusedActivationFunction(), label),
           params=params, stride=(o.StrideH(), o.StrideW()), padding=padding)


def _fc(r: _Reader, op, label, ins, outs):
    o = r.options(op, "FullyConnectedOptions")
    params = {"weight": r.param(ins[1], "OI")}
    if len(ins) > 2 and ins[2] >= 0:
        params["bias"] = r.param(ins[2], "C")
    act = r.activation(o.FusedActivationFunction(), label) if o is not None else None
    r.emit(label, r.name_of(ins, outs), "dense", r.acts_in(ins[:1]), outs[0], act, params=params)


def _join(kind: str, opts: str):
    def handle(r: _Reader, op, label, ins, outs):
        acts = r.acts_in(ins)
        if len(acts) != len(ins):
            raise ArchError(f"{label} '{r.tname(outs[0])}' has a constant operand, which no spec row expresses",
                            None, "the importer maps ADD/MUL/CONCATENATION of two feature maps")
        o = r.options(op, opts)
        if kind == "concat" and o is not None and o.Axis() not in (3, -1):
            raise ArchError(f"{label}: concatenation along axis {o.Axis()}; archdsl concatenates channels")
        act = r.activation(o.FusedActivationFunction(), label) if o is not None else None
        r.emit(label, r.tname(outs[0]), kind, acts, outs[0], act)
    return handle


def _pool(kind: str):
    def handle(r: _Reader, op, label, ins, outs):
        o = r.options(op, "Pool2DOptions")
        r.emit(label, r.tname(outs[0]), kind, r.acts_in(ins), outs[0], r.activation(o.FusedActivationFunction(), label))
    return handle


def _mean(r: _Reader, op, label, ins, outs):
    axes = r.const(ins[1])
    if axes is None or sorted(int(a) for a in np.ravel(axes)) != [1, 2]:
        raise ArchError(f"{label}: MEAN over axes other than height and width is not supported")
    r.emit(label, r.tname(outs[0]), "avgpool", r.acts_in(ins[:1]), outs[0])


def _simple(kind: str):
    def handle(r: _Reader, op, label, ins, outs):
        if kind == "softmax":
            o = r.options(op, "SoftmaxOptions")
            if o is not None and o.Beta() not in (0.0, 1.0):
                raise ArchError(f"{label}: softmax with beta={o.Beta():g} is not supported")
        r.emit(label, r.tname(outs[0]), kind, r.acts_in(ins)[:1], outs[0])
    return handle


def _pad(r: _Reader, op, label, ins, outs):
    p = r.const(ins[1])
    if p is None or p.shape != (4, 2) or np.any(p[0]) or np.any(p[3]):
        raise ArchError(f"{label}: only zero padding of height and width is supported")
    if label.startswith("PADV2") and r.const(ins[2]) is not None and np.any(r.const(ins[2])):
        raise ArchError(f"{label}: padding with a non-zero value is not supported")
    (t, b), (l, rr) = p[1], p[2]
    r.emit(label, r.tname(outs[0]), "pad", r.acts_in(ins[:1]), outs[0], pads=(int(t), int(l), int(b), int(rr)))


def _transpose(r: _Reader, op, label, ins, outs):
    """RESHAPE-TRANSPOSE-RESHAPE in NHWC: (N, H, W, g, C/g) transposed to (N, H, W, C/g, g) is a channel shuffle."""
    perm = r.const(ins[1])
    if perm is None or [int(v) for v in np.ravel(perm)] != [0, 1, 2, 4, 3]:
        raise ArchError(f"{label}: only the transpose of a channel shuffle (perm 0, 1, 2, 4, 3 between two "
                        "RESHAPEs) is supported")
    r.emit(label, r.tname(outs[0]), "shuffle", r.acts_in(ins[:1]), outs[0])


def _split(r: _Reader, op, label, ins, outs):
    """SPLIT (axis, input) into equal parts along the channels: one channel split per output."""
    axis = r.const(ins[0])
    if axis is None or int(np.ravel(axis)[0]) not in (3, -1):
        raise ArchError(f"{label}: a split along axis {axis}; archdsl splits channels (NHWC axis 3) only")
    for out in outs:
        r.emit(label, r.tname(out), "split", r.acts_in(ins[1:2]), out)


def _dequantize(r: _Reader, op, label, ins, outs):
    src = r.const(ins[0])
    if src is None and r.ttype(ins[0]) == "INT8" and r.ttype(outs[0]) == "FLOAT32":
        # an int8 network's float output: the boundary, a view for the matcher
        r.emit(label, r.tname(outs[0]), "pass", [ins[0]], outs[0])
    elif src is not None and src.dtype == np.float16:
        r.consts[outs[0]] = src.astype(np.float32)  # float16 weights: widened, then used as constants
    elif src is not None and src.dtype == np.int8:
        r.consts[outs[0]] = r.dequantized(ins[0], src)  # int8 weights of a weight-only quantized model
        r.dequantized_weights += 1
    else:
        raise ArchError(f"{QUANTIZED} ({label} of a {r.ttype(ins[0])} tensor '{r.tname(ins[0])}')", None,
                        QUANTIZED_HINT)


def _quantized(r: _Reader, op, label, ins, outs):
    """QUANTIZE: of the float graph input into int8, the boundary of an int8 network with float I/O."""
    if ins[0] == r.graph_input and r.ttype(ins[0]) == "FLOAT32" and r.ttype(outs[0]) == "INT8":
        r.boundary_input = outs[0]
        r.emit(label, r.tname(outs[0]), "pass", [ins[0]], outs[0])
        return
    raise ArchError(f"{QUANTIZED} ({label} of '{r.tname(ins[0])}' from {r.ttype(ins[0])} to {r.ttype(outs[0])}: "
                    "a requantization inside the network)", None,
                    "archdsl reads int8 networks whose only QUANTIZE is of the float input")


HANDLERS = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "FULLY_CONNECTED": _fc,
    "ADD": _join("add", "AddOptions"),
    "MUL": _join("mul", "MulOptions"),
    "CONCATENATION": _join("concat", "ConcatenationOptions"),
    "AVERAGE_POOL_2D": _pool("avgpool"),
    "MAX_POOL_2D": _pool("maxpool"),
    "MEAN": _mean,
    "RESHAPE": _simple("pass"),
    "SQUEEZE": _simple("pass"),
    "PAD": _pad,
    "TRANSPOSE": _transpose,
    "SPLIT": _split,
    "PADV2": _pad,
    "DEQUANTIZE": _dequantize,
    "QUANTIZE": _quantized,
    **{name: _simple(kind) for name, kind in format_names("tflite").items()},  # activations, softmax
}


def read(path, limit: int = DEFAULT_LIMIT) -> ModelGraph:
    """The ModelGraph of a float .tflite file."""
    return _Reader(Path(path), limit).read()
