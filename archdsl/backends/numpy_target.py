"""The NumPy target: the reference semantics of every op, and a standalone NumPy runtime.

Two tables, one entry per op:

- REFERENCE[op class](node, weights, inputs) -> output: the unfused, node-by-node
  meaning of each op, in float64 and written for clarity (window views and
  einsum), not speed. `reference_forward` runs a graph with it; every target,
  this one included, is tested against it.
- LOWERINGS[op class](step, emit) -> code: how one fused step of the schedule
  (conv + folded BN + activation) becomes one call of a kernel from
  archdsl/runtime/numpy_kernels.py in the generated `<name>.py`.

`compile` writes <name>.py (numpy + the standard library only; BN folded; the
needed kernels copied in) and <name>.npz (the folded weights it runs on).
"""
from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
import keyword
import re
from pathlib import Path

import numpy as np

from ..ir import Graph, Node
from ..ops.base import Window
from .. import ops
from . import codetext
from ..weights import bn_scale_shift
from .common import check_batch, lowering_for, number, params_text, template_env

NAME = "numpy"
EXTRA = None


def unavailable() -> str | None:
    return None  # numpy is a core dependency


# ================================================================ reference semantics


def _windows(x: np.ndarray, attrs: Window, value: float) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) windows of x padded with `value`, as a strided view."""
    (kh, kw), (sh, sw), (t, l, b, r) = attrs.kernel, attrs.stride, attrs.pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)
    return np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def _param(node: Node, weights: dict, local: str) -> np.ndarray:
    return np.asarray(weights[node.param_key(local)], dtype=np.float64)


def _bias(node: Node, weights: dict, n: int) -> np.ndarray:
    return _param(node, weights, "bias") if "bias" in node.params else np.zeros(n)


def _ref_conv(node, weights, xs):
    """Convolution with groups (depthwise is groups = Cin): a sum over each window."""
    x, a = xs[0], node.attrs
    w = _param(node, weights, "weight")
    cout, cg, kh, kw = w.shape
    g = a.groups
    win = _windows(x, a, 0.0)
    n, c, oh, ow = win.shape[:4]
    if g == 1:
        y = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    else:
        win = win.reshape(n, g, c // g, oh, ow, kh, kw)
        y = np.einsum("ngchwij,gocij->ngohw", win, w.reshape(g, cout // g, cg, kh, kw), optimize=True)
    return y.reshape(n, cout, oh, ow) + _bias(node, weights, cout).reshape(1, -1, 1, 1)


def _ref_fc(node, weights, xs):
    x = xs[0]
    w = _param(node, weights, "weight")
    y = x.reshape(x.shape[0], -1) @ w.T + _bias(node, weights, w.shape[0])
    return y.reshape(x.shape[0], -1, 1, 1)


def _ref_bn(node, weights, xs):
    def per_channel(local):
        return _param(node, weights, local).reshape(1, -1, 1, 1)

    return ((xs[0] - per_channel("running_mean")) / np.sqrt(per_channel("running_var") + node.attrs.eps)
            * per_channel("weight") + per_channel("bias"))


def _ref_max_pool(node, weights, xs):
    return _windows(xs[0], node.attrs, -np.inf).max(axis=(4, 5))


def _ref_avg_pool(node, weights, xs):
    """The window mean over real elements only (count_include_pad=False)."""
    x = xs[0]
    total = _windows(x, node.attrs, 0.0).sum(axis=(4, 5))
    count = _windows(np.ones_like(x[:1, :1]), node.attrs, 0.0).sum(axis=(4, 5))
    return total / count


def _ref_softmax(node, weights, xs):
    e = np.exp(xs[0] - xs[0].max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ref_shuffle(node, weights, xs):
    """Channels as (groups, C / groups), transposed."""
    n, c, h, w = xs[0].shape
    g = node.attrs.groups
    return xs[0].reshape(n, g, c // g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)


def _relu6(x):
    return np.minimum(np.maximum(x, 0.0), 6.0)


REFERENCE = {
    ops.Conv: _ref_conv,
    ops.ConvDW: _ref_conv,
    ops.FC: _ref_fc,
    ops.BatchNorm: _ref_bn,
    ops.MaxPool: _ref_max_pool,
    ops.GlobalMaxPool: _ref_max_pool,
    ops.AvgPool: _ref_avg_pool,
    ops.GlobalAvgPool: _ref_avg_pool,
    ops.ReLU: lambda node, weights, xs: np.maximum(xs[0], 0.0),
    ops.ReLU6: lambda node, weights, xs: _relu6(xs[0]),
    ops.Sigmoid: lambda node, weights, xs: 0.5 * (1.0 + np.tanh(0.5 * xs[0])),  # = 1/(1+e^-x), no overflow
    ops.HardSigmoid: lambda node, weights, xs: _relu6(xs[0] + 3.0) / 6.0,
    ops.HardSwish: lambda node, weights, xs: xs[0] * _relu6(xs[0] + 3.0) / 6.0,
    ops.SiLU: lambda node, weights, xs: xs[0] * 0.5 * (1.0 + np.tanh(0.5 * xs[0])),  # x * sigmoid(x)
    ops.Softmax: _ref_softmax,
    ops.Add: lambda node, weights, xs: xs[0] + xs[1],
    ops.Mul: lambda node, weights, xs: xs[0] * xs[1],
    ops.Concat: lambda node, weights, xs: np.concatenate(xs, axis=1),
    ops.ChannelSplit: lambda node, weights, xs: xs[0][:, slice(*node.attrs.channel_range(xs[0].shape[1]))],
    ops.ChannelShuffle: _ref_shuffle,
    ops.Flatten: lambda node, weights, xs: xs[0].reshape(xs[0].shape[0], -1, 1, 1),
    ops.Dropout: lambda node, weights, xs: xs[0],  # identity at inference
}


def check_input(graph: Graph, x) -> np.ndarray:
    return check_batch(x, graph.input_shape.chw, graph.name, dtype=np.float64)


def reference_forward(graph: Graph, weights: dict, x, keep: bool = False, settle=None):
    """Run `graph` node by node, unfused, in float64, with the REFERENCE table.

    x: an NCHW batch (N, C, H, W). Returns (output, layers), both float32; `layers`
    maps every node name to its output when keep=True (else it is empty, and each
    tensor is dropped after its last reader). `settle(node, inputs, output) -> output`,
    when given, sees each node's result and may replace it (the seeded init scales
    the weights in `weights` there and returns the output they give).
    """
    x = check_input(graph, x)
    last_read: dict[str, int] = {}
    for k, node in enumerate(graph.nodes):
        for t in node.inputs:
            last_read[t] = k
    env = {graph.input_name: x}
    layers: dict[str, np.ndarray] = {}
    for k, node in enumerate(graph.nodes):
        xs = [env[t] for t in node.inputs]
        y = lowering_for(REFERENCE, node.op, "numpy reference", node.name)(node, weights, xs)
        if settle is not None:
            y = settle(node, xs, y)
        expected = (x.shape[0], *node.out_shape.chw)
        if y.shape != expected:  # the IR's shape is the contract
            raise AssertionError(f"{node.name} ({node.op.name}): reference gives {y.shape}, the IR says {expected}")
        env[node.name] = y
        if keep:
            layers[node.name] = y.astype(np.float32)
        else:
            for t in set(node.inputs):
                if last_read.get(t) == k and t != graph.output:
                    del env[t]
    return env[graph.output].astype(np.float32), layers


# ================================================================ code generation

KERNELS_MODULE = "archdsl.runtime.numpy_kernels"


def _lit(value) -> str:
    """A Python literal for generated code: tuples of ints, floats that round-trip (%.9g)."""
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_lit(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if value is None or isinstance(value, (bool, int, float)):
        return number(value)
    raise TypeError(f"no literal for {value!r}")


class Emitter:
    """What a lowering needs: variable names of tensors, weight references, kernel calls."""

    RESERVED = {"np", "W", "x", "layers", "weights", "run", "main", "load_weights", "INPUT_SHAPE",
                "OUTPUT_SHAPE", "LAYERS", "WEIGHTS_FILE"}

    def __init__(self, graph: Graph, weights: dict, kernel_names: set[str]):
        self.graph = graph
        self.weights = weights
        self.kernel_names = kernel_names
        self.kernels_used: list[str] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.vars: dict[str, str] = {graph.input_name: "x"}
        self._taken = set(self.RESERVED) | set(kernel_names) | set(dir(builtins))
        self.folded: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def var(self, tensor: str) -> str:
        if tensor not in self.vars:
            self.vars[tensor] = codetext.identifier(tensor, self._taken)
        return self.vars[tensor]

    def array(self, key: str, value: np.ndarray) -> str:
        self.arrays[key] = np.ascontiguousarray(value, dtype=np.float32)
        return f"W[{codetext.py_str(key)}]"

    def folded_params(self, step) -> tuple[str, str]:
        """References to the BN-folded (weight, bias) of a conv / conv dw / fc step."""
        w, b = self.folded[step.main.name]
        return self.array(step.main.param_key("weight"), w), self.array(step.main.param_key("bias"), b)

    def act(self, step) -> str:
        if step.activation is None:
            return "None"
        return self.kernel(step.activation.op.name)

    def kernel(self, name: str) -> str:
        if name not in self.kernel_names:
            raise KeyError(f"no NumPy kernel named {name!r}")
        if name not in self.kernels_used:
            self.kernels_used.append(name)
        return name

    def call(self, kernel: str, *args: str) -> str:
        return f"{self.kernel(kernel)}({', '.join(args)})"

    def x(self, step, i: int = 0) -> str:
        return self.var(step.inputs[i])


def _no_epilogue(step) -> None:
    if step.activation is not None:  # the schedule fuses activations only into ops that take them
        raise AssertionError(f"{step.main.name}: {step.main.op.name} cannot run a fused activation")


def _lower_conv(step, e: Emitter) -> str:
    a = step.main.attrs
    w, b = e.folded_params(step)
    geometry = [f"stride={_lit(tuple(a.stride))}", f"pads={_lit(tuple(a.pads))}"]
    if tuple(a.kernel) == (1, 1) and a.groups == 1:
        return e.call("conv1x1", e.x(step), w, b, *geometry, f"act={e.act(step)}")
    return e.call("conv2d", e.x(step), w, b, *geometry, f"groups={a.groups}", f"act={e.act(step)}")


def _lower_conv_dw(step, e: Emitter) -> str:
    a = step.main.attrs
    w, b = e.folded_params(step)
    return e.call("conv_dw", e.x(step), w, b, f"stride={_lit(tuple(a.stride))}", f"pads={_lit(tuple(a.pads))}",
                  f"act={e.act(step)}")


def _lower_fc(step, e: Emitter) -> str:
    w, b = e.folded_params(step)
    return e.call("fc", e.x(step), w, b, f"act={e.act(step)}")


def _lower_bn(step, e: Emitter) -> str:
    """A BN that did not fold (its input has other readers, or no conv before it)."""
    node = step.main
    scale, shift = bn_scale_shift(node, e.weights)
    return e.call("scale_shift", e.x(step), e.array(f"{node.name}.scale", scale),
                  e.array(f"{node.name}.shift", shift), f"act={e.act(step)}")


def _lower_pool(kernel: str, global_kernel: str):
    def lower(step, e: Emitter) -> str:
        _no_epilogue(step)
        a = step.main.attrs
        if a.is_global:
            return e.call(global_kernel, e.x(step))
        return e.call(kernel, e.x(step), f"kernel={_lit(tuple(a.kernel))}", f"stride={_lit(tuple(a.stride))}",
                      f"pads={_lit(tuple(a.pads))}")

    return lower


def _lower_unary(kernel: str):
    def lower(step, e: Emitter) -> str:
        _no_epilogue(step)
        return e.call(kernel, e.x(step))

    return lower


def _lower_add(step, e: Emitter) -> str:
    return e.call("add", e.x(step, 0), e.x(step, 1), f"act={e.act(step)}")


def _lower_mul(step, e: Emitter) -> str:
    _no_epilogue(step)
    return e.call("mul", e.x(step, 0), e.x(step, 1))


def _lower_concat(step, e: Emitter) -> str:
    _no_epilogue(step)
    return e.call("concat", *(e.var(t) for t in step.inputs))


def _lower_split(step, e: Emitter) -> str:
    _no_epilogue(step)
    first, end = step.main.attrs.channel_range(step.main.in_shapes[0].c)
    return e.call("channel_slice", e.x(step), str(first), str(end))


def _lower_shuffle(step, e: Emitter) -> str:
    _no_epilogue(step)
    return e.call("channel_shuffle", e.x(step), f"groups={step.main.attrs.groups}")


def _lower_dropout(step, e: Emitter) -> str:
    _no_epilogue(step)
    return f"{e.x(step)}  # identity at inference (p={_lit(float(step.main.attrs.p))})"


LOWERINGS = {
    ops.Conv: _lower_conv,
    ops.ConvDW: _lower_conv_dw,
    ops.FC: _lower_fc,
    ops.BatchNorm: _lower_bn,
    ops.MaxPool: _lower_pool("max_pool", "global_max_pool"),
    ops.AvgPool: _lower_pool("avg_pool", "global_avg_pool"),
    ops.GlobalMaxPool: _lower_pool("max_pool", "global_max_pool"),
    ops.GlobalAvgPool: _lower_pool("avg_pool", "global_avg_pool"),
    ops.Softmax: _lower_unary("softmax"),
    ops.Flatten: _lower_unary("flatten"),
    ops.Dropout: _lower_dropout,
    ops.Add: _lower_add,
    ops.Mul: _lower_mul,
    ops.Concat: _lower_concat,
    ops.ChannelSplit: _lower_split,
    ops.ChannelShuffle: _lower_shuffle,
    **{type(op): _lower_unary(op.name) for op in ops.activations()},  # kernel name = op name
}


def _kernel_functions() -> dict:
    module = importlib.import_module(KERNELS_MODULE)
    return {name: fn for name, fn in vars(module).items()
            if inspect.isfunction(fn) and fn.__module__ == module.__name__}


def _kernel_sources(used: list[str], functions: dict) -> list[str]:
    """The sources of the used kernels and of every kernel function they call, in module order."""
    needed: set[str] = set()
    todo = list(used)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        todo.extend(n for n in functions[name].__code__.co_names if n in functions)
    ordered = sorted(needed, key=lambda n: functions[n].__code__.co_firstlineno)
    return [inspect.getsource(functions[n]).rstrip() + "\n" for n in ordered]


def _step_title(step) -> str:
    """'conv3.conv + bn + relu': the main node, then the fused ones (short when they share its group)."""
    group = step.main.name.rpartition(".")[0]
    parts = [step.main.name]
    for node in step.fused:
        prefix, _, last = node.name.rpartition(".")
        parts.append(last if prefix == group else node.name)
    return " + ".join(parts)


def _count(n: int) -> str:
    return f"{n:,}"


def _spec_params(graph: Graph) -> str:
    return params_text(dict(sorted(graph.params.items())))


def generate(graph: Graph, weights: dict, name: str) -> tuple[str, bytes]:
    """The source of <name>.py and the bytes of <name>.npz, for `graph` with `weights`."""
    from ..analysis import analyze
    from ..weights import check_weights, npz_bytes

    weights = check_weights(weights, graph)
    a = analyze(graph)
    steps = a.steps
    functions = _kernel_functions()
    e = Emitter(graph, weights, set(functions))
    e.folded = a.folded(weights)
    calls = []
    for step in steps:
        main = step.main
        code = lowering_for(LOWERINGS, main.op, "numpy", main.name)(step, e)
        names = _step_title(step)
        ins = ", ".join(str(graph.shape_of(t)) for t in step.inputs)
        macs = sum(n.macs for n in step.nodes)
        cost = f", {_count(macs)} mult-adds" if macs else ""
        calls.append({
            "line": f"line {main.row.line}: {' '.join(main.row.text.split('#')[0].split())}",
            "what": f"{names}: {ins} -> {step.out_shape}{cost}",
            "var": e.var(step.output),
            "code": code,
        })
    layers = [(step.output, e.var(step.output)) for step in steps]
    out = graph.output_shape
    source = template_env("numpy").get_template("module.py.j2").render(
        name=name,
        network=graph.name,
        spec=codetext.source_label(graph.source_name),
        params=_spec_params(graph),
        input_shape=_lit(tuple(graph.input_shape.chw)),
        output_shape=_lit(tuple(out.chw)),
        input_dims=", ".join(map(str, graph.input_shape.chw)),
        output_dims=", ".join(map(str, out.chw)),
        kernels=_kernel_sources(e.kernels_used, functions),
        kernels_module=KERNELS_MODULE,
        calls=calls,
        output_var=e.var(graph.output),
        layers=layers,
        total_mult_adds=_count(sum(n.macs for n in graph.nodes)),
    )
    return source, npz_bytes(e.arrays)


INT8 = True  # int8 weight dicts compile to an int8 runtime (numpy_int8.py)


def compile(graph: Graph, weights: dict, outdir, name: str) -> list[Path]:
    """Write <outdir>/<name>.py and <outdir>/<name>.npz, all or nothing."""
    from ..fsutil import write_files_atomically
    from ..quant.weights_file import is_int8_dict

    name = codetext.py_module(name)
    if is_int8_dict(weights):
        from .numpy_int8 import compile as compile_int8

        return compile_int8(graph, weights, outdir, name)

    _check_name(name)
    source, npz = generate(graph, weights, name)
    return write_files_atomically(outdir, {f"{name}.py": source, f"{name}.npz": npz})


def _check_name(name: str) -> None:
    from ..errors import ArchError

    if not name.isidentifier() or keyword.iskeyword(name):
        raise ArchError(f"--name {name!r}: the NumPy runtime is a Python module, its name must be an identifier",
                        None, "e.g. --name mobilenet_v1")


def load_module(outdir, name: str):
    """Import the generated <outdir>/<name>.py as a fresh module (not added to sys.modules)."""
    path = Path(outdir) / f"{codetext.py_module(name)}.py"
    spec = importlib.util.spec_from_file_location(f"archdsl_generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(outdir, name: str, x) -> np.ndarray:
    """Run the generated runtime on an NCHW float32 batch."""
    return load_module(outdir, name).run(x)


def run_layers(outdir, name: str, x) -> dict[str, np.ndarray]:
    """Every fused step's output, by the name of its last node (e.g. 'conv3.relu')."""
    layers: dict[str, np.ndarray] = {}
    load_module(outdir, name).run(x, layers=layers)
    return layers


__all__ = ["NAME", "EXTRA", "LOWERINGS", "REFERENCE", "unavailable", "compile", "run", "run_layers",
           "reference_forward", "generate"]
