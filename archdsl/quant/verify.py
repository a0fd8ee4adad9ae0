"""`archdsl verify --weights INT8.npz`: int8 targets and an int8 model against the NumPy int8 reference.

Bit-exactness is the bar: every value of every step output must be equal. A difference is
reported in LSB (units of the tensor's int8 scale) at the first tensor, in execution order, that
diverges. With `model` (the .tflite the weights came from), the oracle (TensorFlow Lite Micro by
default, or LiteRT BUILTIN_REF) runs the model on the same inputs and is compared the same way.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import arithmetic as A
from .network import QuantizedNetwork
from .oracles import ORACLES, compare, oracle_tensors, to_nhwc
from .runtime import run_int8


@dataclass
class Int8Result:
    target: str
    status: str            # ok | FAIL | skipped | error
    equal: int = 0
    total: int = 0
    tensors: str = "-"     # "compared/steps"
    max_lsb: int = 0
    detail: str = ""
    notes: list[str] = field(default_factory=list)


def _first_divergence(net: QuantizedNetwork, diffs) -> str | None:
    for d in diffs:
        if not d.exact:
            step = next(s for s in net.steps if s.output == d.tensor)
            row = step.main.row
            line = " ".join(row.text.split("#")[0].split())
            return (f"first diverging tensor: {d.tensor} ({step.kind}, line {row.line}: {line}): "
                    f"{d.total - d.equal:,} of {d.total:,} values differ, max {d.max_lsb} LSB")
    return None


def _result(name: str, net: QuantizedNetwork, diffs, total_steps: int) -> Int8Result:
    equal, total = sum(d.equal for d in diffs), sum(d.total for d in diffs)
    r = Int8Result(name, "ok" if equal == total and diffs else "FAIL", equal, total, f"{len(diffs)}/{total_steps}",
                   max((d.max_lsb for d in diffs), default=0))
    first = _first_divergence(net, diffs)
    if first:
        r.detail = first.split(":")[1].split("(")[0].strip()
        r.notes.append(first)
    if not diffs:
        r.notes.append("no tensor to compare")
    return r


def verify_int8(graph, weights: dict, targets: list[str], seed: int, batch: int, model=None,
                oracle: str = "tflm") -> list[Int8Result]:
    from ..commands.targets import load_target
    from ..errors import ArchError

    net = QuantizedNetwork.build(graph, weights)
    order = [s.output for s in net.steps]
    same_names = {t: t for t in [graph.input_name] + order}
    q = np.random.default_rng(seed).integers(-128, 128, (batch, *graph.input_shape.chw)).astype(np.int8)
    # the targets implement TFLite Micro's arithmetic (FC in fixed point); the oracle row is
    # compared with the reference in that oracle's FC rounding
    _, ref = run_int8(net, q, "tflm", keep=True)
    results = []
    if model is not None:
        from ..importers import import_int8_weights

        name = f"{oracle} ({Path(model).name})"
        try:
            _, _, tensor_map = import_int8_weights(graph, model)
            wanted = [t for k, t in tensor_map.items() if k != graph.input_name]
            theirs = oracle_tensors(oracle, model, to_nhwc(q), wanted)
            _, ref_oracle = run_int8(net, q, ORACLES[oracle].fc_requant, keep=True)
            results.append(_result(name, net, compare(tensor_map, ref_oracle, theirs, order), len(order)))
        except ArchError as e:
            results.append(Int8Result(name, "error", detail=e.diagnostics[0].message))
    x = A.dequantize(q, net.input.scale, net.input.zero_point)  # quantizes back to q exactly
    with tempfile.TemporaryDirectory(prefix="archdsl-verify-int8-") as tmp:
        for t in targets:
            try:
                target = load_target(t)
            except ArchError as e:
                results.append(Int8Result(t, "skipped", detail=e.diagnostics[0].message))
                continue
            if not getattr(target, "INT8", False):
                results.append(Int8Result(t, "skipped", detail=f"the {t} target has no int8 build"))
                continue
            outdir = Path(tmp) / t
            try:
                target.compile(graph, weights, outdir, graph.name)
                layers = target.run_layers(outdir, graph.name, x)
                ours = {k: np.rint(np.asarray(v, np.float64)).astype(np.int32) for k, v in layers.items()}
                r = _result(t, net, compare(same_names, ours, ref, order, theirs_nchw=True), len(order))
                if r.status == "FAIL" and not getattr(target, "INT8_EXACT", True):
                    r.status = "close"  # a runtime that rounds its own way (ORT): its LSB are the report
                    r.notes.append(f"the {t} runtime is not bit-exact with TFLite by design; max {r.max_lsb} LSB")
                results.append(r)
            except ArchError as e:
                results.append(Int8Result(t, "error", detail=e.diagnostics[0].message))
            except Exception as e:  # a target that crashes is a failed verification, reported
                results.append(Int8Result(t, "error", detail=f"{type(e).__name__}: {e}".splitlines()[0]))
    return results
