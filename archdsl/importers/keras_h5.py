"""Keras HDF5 full models (.h5, as `model.save('m.h5')` writes them), read with h5py.

The graph comes from the file's `model_config` (Functional or Sequential; Keras 2 and Keras 3
inbound-node formats), the weights from `model_weights/<layer>/` in the order of the layer's
`weight_names`. Layouts: Conv2D kernel (kh, kw, I, O), DepthwiseConv2D (kh, kw, C, multiplier),
Dense (in, out); BatchNormalization keeps γ, β and the moving statistics (BN is not folded).
TensorFlow itself is never imported.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ArchError
from ..inputs import DEFAULT_LIMIT, open_h5
from .structure import ModelGraph, ModelOp, ModelTensor, conv_kind, format_names

FORMAT = "Keras .h5"

ACTIVATIONS = {"linear": None, **format_names("keras")}  # Keras activation name -> kind


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def _pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return (int(v[0]), int(v[1]))
    raise ArchError(f"cannot read {what} {v!r}")


class _Reader:
    def __init__(self, path: Path, limit: int):
        self.file = open_h5(path, limit)
        if "model_config" not in self.file.attrs:
            raise ArchError(f"{path.name} has no model configuration (a weights-only file?)", None,
                            "save the whole model: model.save('model.h5')")
        try:
            self.config = json.loads(_text(self.file.attrs["model_config"]))
        except ValueError:
            raise ArchError(f"{path.name}: the model configuration is not readable JSON") from None
        self.weights = self.file["model_weights"] if "model_weights" in self.file else self.file
        self.ops: list[ModelOp] = []
        self.flatten = "hwc"

    def close(self) -> None:
        self.file.close()

    # ------------------------------------------------------------ weights
    def layer_weights(self, name: str) -> dict[str, ModelTensor]:
        """{kernel, bias, depthwise_kernel, gamma, ...: tensor} of a layer, as stored."""
        if name not in self.weights:
            return {}
        group = self.weights[name]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        out: dict[str, ModelTensor] = {}
        for wn in names:
            short = wn.split("/")[-1].split(":")[0]
            arr = np.asarray(group[wn])
            if not np.issubdtype(arr.dtype, np.floating):
                raise ArchError(f"the weight '{name}/{wn}' is {arr.dtype}, not float", None,
                                "quantized models are not supported")
            out[short] = ModelTensor(f"{name}/{wn}", arr.astype(np.float32), "")
        return out

    # ------------------------------------------------------------ graph
    def read(self) -> ModelGraph:
        cls = self.config.get("class_name")
        cfg = self.config.get("config", {})
        layers = cfg.get("layers")
        if cls not in ("Functional", "Model", "Sequential") or not isinstance(layers, list):
            raise ArchError(f"a Keras '{cls}' model: the importer reads Functional and Sequential models")
        input_hwc = None
        sequential = cls == "Sequential"
        prev = "input"
        for k, layer in enumerate(layers):
            lcls, lcfg = layer.get("class_name"), layer.get("config", {})
            name = lcfg.get("name") or layer.get("name") or f"layer{k}"
            shape = lcfg.get("batch_input_shape") or lcfg.get("batch_shape")
            if shape is not None and input_hwc is None and len(shape) == 4:
                input_hwc = tuple(int(d) for d in shape[1:]) if None not in shape[1:] else None
            if lcls == "InputLayer":
                if sequential:
                    continue
                self.ops.append(ModelOp(name, lcls, "input", [], f"{name}:0:0"))
                continue
            if sequential:
                ins, out = [prev], f"{name}:0:0"
                prev = out
            else:
                ins, out = self.inbound(layer, name), f"{name}:0:0"
            handler = HANDLERS.get(lcls)
            if handler is None:
                hint = ("archdsl specs take the input already scaled: drop the layer and scale the inputs"
                        if lcls in ("Rescaling", "Normalization") else
                        "supported layers: " + ", ".join(sorted(HANDLERS)))
                raise ArchError(f"Keras layer '{name}' ({lcls}) is not supported by the importer", None, hint)
            handler(self, name, lcls, lcfg, ins, out)
        if sequential:
            graph_in, graph_out = "input", prev
        else:
            graph_in = self.endpoint(cfg.get("input_layers"), "input")
            graph_out = self.endpoint(cfg.get("output_layers"), "output")
            self.ops = [op for op in self.ops if op.kind != "input"]
        return ModelGraph(FORMAT, self.ops, graph_in, graph_out, input_hwc, self.flatten)

    def endpoint(self, refs, what: str) -> str:
        found = _history(refs)
        if len(found) != 1:
            raise ArchError(f"the Keras model has {len(found)} {what}s; the importer reads single-{what} models")
        return found[0]

    def inbound(self, layer: dict, name: str) -> list[str]:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ArchError(f"Keras layer '{name}' is called {len(nodes)} times (a shared layer)", None,
                            "the importer reads models whose layers are each used once")
        return _history(nodes[0]) if nodes else []

    def emit(self, name: str, label: str, kind: str, ins: list[str], out: str, act: str | None = None, **fields):
        if act is None:
            self.ops.append(ModelOp(name, label, kind, ins, out, **fields))
            return
        self.ops.append(ModelOp(name, label, kind, ins, out + "#pre", **fields))
        self.ops.append(ModelOp(name, f"{label} activation='{act}'", act, [out + "#pre"], out))


def _history(obj) -> list[str]:
    """Tensor ids 'layer:node:index' referenced in an inbound-nodes structure (Keras 2 lists
    [name, node, index, kwargs] or Keras 3 {'keras_history': [name, node, index]})."""
    out: list[str] = []

    def walk(o):
        if isinstance(o, dict):
            hist = o.get("config", {}).get("keras_history") if isinstance(o.get("config"), dict) else None
            if hist is not None:
                out.append(f"{hist[0]}:{int(hist[1])}:{int(hist[2])}")
                return
            for key in ("args", "inbound_nodes"):
                if key in o:
                    walk(o[key])
            return
        if isinstance(o, (list, tuple)):
            if len(o) >= 3 and isinstance(o[0], str) and isinstance(o[1], int) and isinstance(o[2], int):
                out.append(f"{o[0]}:{o[1]}:{o[2]}")
                return
            for v in o:
                walk(v)

    walk(obj)
    return out


def _activation(cfg: dict, where: str) -> str | None:
    act = cfg.get("activation", "linear")
    if isinstance(act, dict):  # Keras 3 may serialise the function
        act = act.get("config", {}).get("name") or act.get("class_name")
    if act not in ACTIVATIONS:
        raise ArchError(f"Keras layer '{where}': activation '{act}' is not supported", None,
                        "supported: " + ", ".join(sorted(k for k in ACTIVATIONS)))
    return ACTIVATIONS[act]


def _need(w: dict, key: str, name: str) -> ModelTensor:
    if key not in w:
        raise ArchError(f"Keras layer '{name}' has no '{key}' weight in the file")
    return w[key]


def _with_layout(t: ModelTensor, layout: str) -> ModelTensor:
    return ModelTensor(t.name, t.array, layout)


def _padding(cfg: dict, name: str):
    pad = cfg.get("padding", "valid")
    if pad == "same":
        return "same"
    if pad == "valid":
        return (0, 0, 0, 0)
    raise ArchError(f"Keras layer '{name}': padding '{pad}' is not supported")


def _check_conv(r: _Reader, cfg: dict, name: str) -> None:
    if _pair(cfg.get("dilation_rate", 1), "dilation_rate") != (1, 1):
        raise ArchError(f"Keras layer '{name}': dilated convolutions are not supported")
    if cfg.get("data_format") == "channels_first":
        r.flatten = "chw"


def _conv2d(r: _Reader, name, cls, cfg, ins, out):
    _check_conv(r, cfg, name)
    w = r.layer_weights(name)
    kernel = _need(w, "kernel", name)
    params = {"weight": _with_layout(kernel, "HWIO")}
    if "bias" in w:
        params["bias"] = _with_layout(w["bias"], "C")
    groups = int(cfg.get("groups", 1) or 1)
    kind = conv_kind(groups, kernel.array.shape[2] * groups if kernel.array.ndim == 4 else None)
    r.emit(name, cls, kind, ins, out, _activation(cfg, name), params=params,
           stride=_pair(cfg.get("strides", 1), "strides"), padding=_padding(cfg, name))


def _depthwise(r: _Reader, name, cls, cfg, ins, out):
    _check_conv(r, cfg, name)
    w = r.layer_weights(name)
    params = {"weight": _with_layout(_need(w, "depthwise_kernel", name), "HWCM")}
    if "bias" in w:
        params["bias"] = _with_layout(w["bias"], "C")
    r.emit(name, cls, "dwconv", ins, out, _activation(cfg, name), params=params,
           stride=_pair(cfg.get("strides", 1), "strides"), padding=_padding(cfg, name))


def _dense(r: _Reader, name, cls, cfg, ins, out):
    w = r.layer_weights(name)
    params = {"weight": _with_layout(_need(w, "kernel", name), "IO")}
    if "bias" in w:
        params["bias"] = _with_layout(w["bias"], "C")
    r.emit(name, cls, "dense", ins, out, _activation(cfg, name), params=params)


def _bn(r: _Reader, name, cls, cfg, ins, out):
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    channels_first = r.flatten == "chw"
    if axis not in ((1,) if channels_first else (-1, 3)):
        raise ArchError(f"Keras layer '{name}': batch normalisation over axis {axis} is not supported")
    w = r.layer_weights(name)
    names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    params = {ir: _with_layout(w[k], "C") for k, ir in names.items() if k in w}
    for k in ("moving_mean", "moving_variance"):
        _need(w, k, name)
    r.emit(name, cls, "bn", ins, out, params=params, eps=float(cfg.get("epsilon", 1e-3)))


def _act_layer(r: _Reader, name, cls, cfg, ins, out):
    if cls == "Activation":
        kind = _activation(cfg, name) or "pass"
    elif cls == "Softmax":
        kind = "softmax"
    else:  # ReLU
        mx = cfg.get("max_value")
        if float(cfg.get("negative_slope", 0) or 0) != 0 or float(cfg.get("threshold", 0) or 0) != 0 \
                or mx not in (None, 6, 6.0):
            raise ArchError(f"Keras layer '{name}': ReLU(max_value={mx}, negative_slope, threshold) "
                            "other than ReLU or ReLU6 is not supported")
        kind = "relu" if mx is None else "relu6"
    r.emit(name, cls, kind, ins, out)


def _join(kind: str):
    def handle(r: _Reader, name, cls, cfg, ins, out):
        if kind == "concat" and cfg.get("axis", -1) not in ((1,) if r.flatten == "chw" else (-1, 3)):
            raise ArchError(f"Keras layer '{name}': concatenation along axis {cfg.get('axis')}; "
                            "archdsl concatenates channels")
        r.emit(name, cls, kind, ins, out)
    return handle


def _simple(kind: str):
    def handle(r: _Reader, name, cls, cfg, ins, out):
        r.emit(name, cls, kind, ins[:1], out)
    return handle


def _zero_padding(r: _Reader, name, cls, cfg, ins, out):
    p = cfg.get("padding", 1)
    if isinstance(p, int):
        pads = (p, p, p, p)
    elif all(isinstance(v, int) for v in p):
        pads = (p[0], p[1], p[0], p[1])
    else:
        (t, b), (left, right) = p
        pads = (t, left, b, right)
    r.emit(name, cls, "pad", ins[:1], out, pads=tuple(int(v) for v in pads))


HANDLERS = {
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise,
    "Dense": _dense,
    "BatchNormalization": _bn,
    "Activation": _act_layer,
    "ReLU": _act_layer,
    "Softmax": _act_layer,
    "Add": _join("add"),
    "Multiply": _join("mul"),
    "Concatenate": _join("concat"),
    "AveragePooling2D": _simple("avgpool"),
    "GlobalAveragePooling2D": _simple("avgpool"),
    "MaxPooling2D": _simple("maxpool"),
    "GlobalMaxPooling2D": _simple("maxpool"),
    "Flatten": _simple("pass"),
    "Reshape": _simple("pass"),
    "Dropout": _simple("pass"),
    "SpatialDropout2D": _simple("pass"),
    "ZeroPadding2D": _zero_padding,
}


def read(path, limit: int = DEFAULT_LIMIT) -> ModelGraph:
    """The ModelGraph of a Keras .h5 full model."""
    r = _Reader(Path(path), limit)
    try:
        return r.read()
    finally:
        r.close()
