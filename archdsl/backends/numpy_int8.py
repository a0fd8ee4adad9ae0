"""The NumPy target with int8 weights: a standalone int8 runtime, bit-exact with the in-process
reference (archdsl/quant/runtime.py), hence with TensorFlow Lite Micro.

`compile` writes <name>.py (numpy and the standard library only; the int8 kernels of
archdsl/quant/arithmetic.py and archdsl/quant/kernels.py copied in) and <name>.npz (int8 weights,
int32 biases, the requantization multipliers and shifts the compiler computed). The module has

    run(x)                  float32 NCHW in, float32 out: quantized with the input's parameters,
                            dequantized with the output's
    run_int8(q, layers=None, fc_requant="tflm")   int8 NCHW in, int8 NCHW out

One lowering per int8 rule kind (archdsl/quant/rules.py) in LOWERINGS.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from ..quant.network import QStep, QuantizedNetwork


class Int8Emitter:
    def __init__(self, var):
        self.var = var            # tensor name -> Python identifier (shared with the float emitter)
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, key: str, value: np.ndarray) -> str:
        self.arrays[key] = np.asarray(value)
        return f'W["{key}"]'

    def x(self, q: QStep, i: int = 0) -> str:
        return self.var(q.inputs[i])


def _lit(value) -> str:
    from .numpy_target import _lit as lit

    return lit(value)


def _lower_conv(q: QStep, e: Int8Emitter) -> str:
    a, key = q.attrs, q.main.param_key
    arrays = [e.array(key(k), q.arrays[k]) for k in ("weight", "bias", "multiplier", "shift")]
    return (f"conv_int8({e.x(q)}, {', '.join(arrays)}, in_zp={a['in_zero_point']}, out_zp={a['out_zero_point']}, "
            f"lo={a['act_min']}, hi={a['act_max']}, kernel={_lit(tuple(a['kernel']))}, "
            f"stride={_lit(tuple(a['stride']))}, pads={_lit(tuple(a['pads']))}, groups={a['groups']})")


def _lower_fc(q: QStep, e: Int8Emitter) -> str:
    a, key = q.attrs, q.main.param_key
    arrays = [e.array(key(k), q.arrays[k]) for k in ("weight", "bias", "multiplier", "shift")]
    real = e.array(key("real_multiplier"), q.arrays["real_multiplier"])
    return (f"fc_int8({e.x(q)}, {', '.join(arrays)}, in_zp={a['in_zero_point']}, out_zp={a['out_zero_point']}, "
            f"lo={a['act_min']}, hi={a['act_max']}, "
            f"real_multiplier={real} if fc_requant == \"litert_ref\" else None)")


def _lower_add(q: QStep, e: Int8Emitter) -> str:
    a = q.attrs
    return (f"add_kernel({e.x(q, 0)}, {e.x(q, 1)}, in_zero_points={_lit(a['in_zero_points'])}, "
            f"out_zero_point={a['out_zero_point']}, multipliers={_lit(a['multipliers'])}, "
            f"lo={a['act_min']}, hi={a['act_max']})")


def _lower_concat(q: QStep, e: Int8Emitter) -> str:
    a = q.attrs
    ins = ", ".join(e.var(t) for t in q.inputs)
    return (f"concat_int8(({ins},), in_zero_points={_lit(a['in_zero_points'])}, "
            f"out_zero_point={a['out_zero_point']}, multipliers={_lit(a['multipliers'])})")


def _lower_pool(kernel: str):
    def lower(q: QStep, e: Int8Emitter) -> str:
        a = q.attrs
        return (f"{kernel}({e.x(q)}, kernel={_lit(tuple(a['kernel']))}, stride={_lit(tuple(a['stride']))}, "
                f"pads={_lit(tuple(a['pads']))}, lo={a['act_min']}, hi={a['act_max']})")
    return lower


def _lower_softmax(q: QStep, e: Int8Emitter) -> str:
    a = q.attrs
    return (f"softmax_kernel({e.x(q)}, input_multiplier={a['input_multiplier']}, left_shift={a['left_shift']}, "
            f"diff_min={a['diff_min']})")


def _lower_clamp(q: QStep, e: Int8Emitter) -> str:
    return f"clamp_int8({e.x(q)}, lo={q.attrs['act_min']}, hi={q.attrs['act_max']})"


def _lower_reshape(q: QStep, e: Int8Emitter) -> str:
    return f"reshape_int8({e.x(q)}, {_lit(tuple(q.out_shape.chw))})"


LOWERINGS = {
    "conv": _lower_conv,
    "fc": _lower_fc,
    "add": _lower_add,
    "concat": _lower_concat,
    "avgpool": _lower_pool("avg_pool_int8"),
    "maxpool": _lower_pool("max_pool_int8"),
    "softmax": _lower_softmax,
    "clamp": _lower_clamp,
    "reshape": _lower_reshape,
}


def _module_body(module) -> str:
    """A module's source without its docstring and imports (they are the generated file's)."""
    import ast

    source = inspect.getsource(module)
    lines = source.splitlines()
    drop: set[int] = set()
    for k, node in enumerate(ast.parse(source).body):
        docstring = k == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if docstring or isinstance(node, (ast.Import, ast.ImportFrom)):
            drop.update(range(node.lineno - 1, node.end_lineno))
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n") + "\n"


def generate(graph, weights: dict, name: str) -> tuple[str, bytes]:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from ..quant import arithmetic, kernels
    from ..resources import templates_dir
    from ..weights import npz_bytes
    from .numpy_target import Emitter, _count, _spec_params, _step_title

    net = QuantizedNetwork.build(graph, weights)
    names = Emitter(graph, {}, set())
    names._taken |= {"q", "fc_requant", "IN_SCALE", "IN_ZERO_POINT", "OUT_SCALE", "OUT_ZERO_POINT", "run_int8"}
    names.vars[graph.input_name] = "q"
    e = Int8Emitter(names.var)
    calls = []
    for q in net.steps:
        main = q.main
        ins = ", ".join(str(graph.shape_of(t)) for t in q.inputs)
        macs = sum(n.macs for n in q.step.nodes)
        cost = f", {_count(macs)} mult-adds" if macs else ""
        calls.append({
            "line": f"line {main.row.line}: {' '.join(main.row.text.split('#')[0].split())}",
            "what": f"{_step_title(q.step)} [int8 {q.kind}]: {ins} -> {q.out_shape}{cost}; out {q.out}",
            "var": names.var(q.output),
            "code": LOWERINGS[q.kind](q, e),
        })
    env = Environment(loader=FileSystemLoader(str(templates_dir() / "numpy")), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    out = graph.output_shape
    source = env.get_template("module_int8.py.j2").render(
        name=name, network=graph.name, spec=Path(graph.source_name).name, params=_spec_params(graph),
        input_shape=_lit(tuple(graph.input_shape.chw)), output_shape=_lit(tuple(out.chw)),
        input_dims=", ".join(map(str, graph.input_shape.chw)), output_dims=", ".join(map(str, out.chw)),
        in_scale=_lit(float(net.input.scale)), in_zero_point=net.input.zero_point,
        out_scale=_lit(float(net.output.scale)), out_zero_point=net.output.zero_point,
        arithmetic=_module_body(arithmetic), kernels=_module_body(kernels),
        calls=calls, output_var=names.var(net.steps[-1].output),
        layers=[(q.output, names.var(q.output)) for q in net.steps],
        total_mult_adds=_count(sum(n.macs for n in graph.nodes)),
    )
    return source, npz_bytes(e.arrays, keep_dtype=True)


def compile(graph, weights: dict, outdir, name: str) -> list[Path]:
    from ..fsutil import write_files_atomically
    from .numpy_target import _check_name

    _check_name(name)
    source, npz = generate(graph, weights, name)
    return write_files_atomically(outdir, {f"{name}.py": source, f"{name}.npz": npz})
