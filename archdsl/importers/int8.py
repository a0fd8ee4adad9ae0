"""A full-int8 model's quantization onto a spec's int8 weight file (archdsl/quant/weights_file.py).

The structural matcher aligns the model's float view with the spec (structure.py: every layer,
shape, stride and padding checked, each difference reported on its spec row); this module then
takes, for every step of the spec's int8 schedule, the model's own integers: the int8 weights (in
the IR layout, the same transform as the float view), the int32 biases, the per-channel weight
scales, and the (scale, zero point) of every activation tensor. Nothing is re-derived, so the
quantization is kept exactly. Every mismatch names the spec line and the model tensor.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchError
from ..ir import Graph
from .structure import ImportResult


def _tensor(model, t: str) -> str:
    return model.tensor_names.get(t.split("#")[0], t)


def import_int8(graph: Graph, model, result: ImportResult) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(the int8 weight dict of `graph`, {IR tensor: model tensor "t<index>"}) from a QuantModelGraph
    matched as `result`. The tensor map pairs every step output the model also has (the oracles'
    intermediates). Raises ArchError."""
    from ..quant.network import SOFTMAX_OUT, node_loc, refuse_unsupported
    from ..quant.weights_file import check_int8, tensor_key
    from .tflite import QuantTensor

    out: dict[str, np.ndarray] = {}

    def act_params(t: str, node, what: str) -> tuple[float, int]:
        q = model.quant.get(t)
        if q is None or model.types.get(t) != "INT8":
            kind = model.types.get(t, "?")
            raise ArchError(f"{what}: the model's tensor '{_tensor(model, t)}' is {kind}"
                            f"{'' if q is None else ''} without int8 quantization",
                            node_loc(node) if node is not None else None,
                            "import a full-int8 model (every activation int8)")
        if len(q.scales) != 1:
            raise ArchError(f"{what}: the model's tensor '{_tensor(model, t)}' is quantized per channel; "
                            "int8 activations are per tensor", node_loc(node) if node is not None else None)
        return float(np.float32(q.scales[0])), int(q.zero_points[0])

    def put_act(tensor: str, params: tuple[float, int]) -> None:
        out[tensor_key(tensor, "scale")] = np.array(params[0], np.float32)
        out[tensor_key(tensor, "zero_point")] = np.array(params[1], np.int32)

    model_input = model.int8_input or model.input  # float I/O: the QUANTIZE's int8 output
    put_act(graph.input_name, act_params(model_input, None, "the network input"))
    params = {graph.input_name: act_params(model_input, None, "the network input")}
    tensor_map = {graph.input_name: model_input}
    for step, rule in refuse_unsupported(graph):
        paired = [n for n in step.nodes if n.name in result.pairs]
        main = step.main
        if rule.output == "input" or not paired:
            mine = params[step.inputs[0]]
            if paired:  # the model's own tensor must carry the same parameters (pools, reshapes)
                op = result.pairs[paired[-1].name]
                theirs = act_params(op.output, main, f"{main.name}")
                if theirs != mine:
                    raise ArchError(f"the model's {op.short()} output '{_tensor(model, op.output)}' has int8 "
                                    f"parameters (scale {theirs[0]:.9g}, zero point {theirs[1]}), its input "
                                    f"(scale {mine[0]:.9g}, zero point {mine[1]}); archdsl's int8 "
                                    f"'{main.op.name}' shares its input's", node_loc(main))
        else:
            op = result.pairs[paired[-1].name]
            mine = act_params(op.output, main, main.name)
            if rule.output == "fixed" and mine != (SOFTMAX_OUT.scale, SOFTMAX_OUT.zero_point):
                raise ArchError(f"the model's softmax output '{_tensor(model, op.output)}' is (scale {mine[0]:.9g}, "
                                f"zero point {mine[1]}); the int8 softmax needs (1/256, -128)", node_loc(main))
        params[step.output] = mine
        put_act(step.output, mine)
        if paired and "#" not in result.pairs[paired[-1].name].output:
            tensor_map[step.output] = result.pairs[paired[-1].name].output
        if rule.weights:
            _weights(out, main, result, model, params[step.inputs[0]], QuantTensor)
    weights = check_int8({**out, "__format__": np.array("archdsl-int8"), "__version__": np.array(1, np.int32)},
                         graph, "the int8 weights imported")
    return weights, tensor_map


def _weights(out, main, result, model, in_params, QuantTensor) -> None:
    from ..quant.network import node_loc

    op = result.pairs[main.name]
    loc = node_loc(main)
    w = op.params["weight"]
    if not isinstance(w, QuantTensor) or w.quant is None or w.raw.dtype != np.int8:
        raise ArchError(f"{main.param_key('weight')}: the model's weight '{w.name}' is not int8-quantized", loc,
                        "import a full-int8 model")
    q = w.quant
    cout = int(main.params["weight"].shape[0])
    per_channel = len(q.scales) > 1
    if main.op.name != "fc" and not per_channel and cout > 1:
        raise ArchError(f"{main.param_key('weight')}: the model's weight '{w.name}' is quantized per tensor; "
                        "int8 conv weights are per output channel", loc,
                        "convert the model with per-channel quantization (the TFLite converter's default)")
    if per_channel and len(q.scales) != cout:
        raise ArchError(f"{main.param_key('weight')}: the model's weight '{w.name}' has {len(q.scales)} scales "
                        f"for {cout} output channels", loc)
    if any(z != 0 for z in q.zero_points):
        raise ArchError(f"{main.param_key('weight')}: the model's weight '{w.name}' has non-zero zero points; "
                        "int8 weights are symmetric", loc)
    scales = np.asarray(q.scales, np.float32)
    # the matcher has put the float view into the IR layout (transposes, FC column order); the
    # integers are that view divided by the channel's scale, exactly (|q| <= 127 << 2^23)
    view = result.weights[main.param_key("weight")]
    bshape = (-1,) + (1,) * (view.ndim - 1)
    ratio = view.astype(np.float64) / scales.astype(np.float64).reshape(bshape if per_channel else (1,) * view.ndim)
    ints = np.rint(ratio)
    if np.max(np.abs(ratio - ints), initial=0.0) > 1e-3:  # pragma: no cover - a reader bug, not user input
        raise AssertionError(f"{w.name}: the dequantized view does not invert")
    out[main.param_key("weight")] = ints.astype(np.int8)
    out[main.param_key("weight_scale")] = scales if per_channel else scales[:1]

    b = op.params.get("bias")
    if b is None:
        out[main.param_key("bias")] = np.zeros(cout, np.int32)
        return
    if not isinstance(b, QuantTensor) or b.raw.dtype != np.int32:
        raise ArchError(f"{main.param_key('bias')}: the model's bias '{b.name}' is not int32-quantized", loc,
                        "import a full-int8 model")
    want = np.float32(in_params[0]) * np.broadcast_to(scales, (cout,))
    have = np.broadcast_to(np.asarray(b.quant.scales, np.float32), (cout,))
    if not np.allclose(have, want, rtol=1e-6, atol=0):
        raise ArchError(f"{main.param_key('bias')}: the model's bias '{b.name}' has scale {have[0]:.9g}, not "
                        f"input scale x weight scale = {want[0]:.9g}, which the int8 kernels assume", loc)
    out[main.param_key("bias")] = np.asarray(b.raw, np.int32).reshape(cout)
