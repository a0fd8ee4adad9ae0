"""The int8 oracles: TensorFlow Lite Micro and LiteRT's reference kernels, every tensor kept.

    ORACLES[name] = Oracle(package, version, fc_requant)   the pinned versions bit-exactness is claimed for
    oracle_tensors(name, model_path, x_nhwc, wanted) -> {"t<index>": batch as the model stores it}
    compare(net, tensor_map, ours, theirs) -> [TensorDiff] in execution order

"tflm" (the `tflite-micro` package, its reference kernels, FC in fixed point) is the deployment
reference on microcontrollers and the default; "litert" is ai-edge-litert's BUILTIN_REF kernel
set (FC requantized in double precision since LiteRT commit 9213607, shared/notes/tflite_int8.md
§2.8). Other LiteRT resolvers (XNNPACK, ruy) round differently and are never oracles.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArchError


@dataclass(frozen=True)
class Oracle:
    package: str
    version: str
    fc_requant: str  # the runtime.py mode that reproduces it
    title: str


ORACLES = {
    "tflm": Oracle("tflite-micro", "0.dev20261023182759", "tflm", "TensorFlow Lite Micro reference kernels"),
    "litert": Oracle("ai-edge-litert", "2.3.0", "litert_ref", "LiteRT BUILTIN_REF kernels"),
}


def installed_version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_available(name: str) -> Oracle:
    oracle = ORACLES[name]
    have = installed_version(oracle.package)
    if have is None:
        raise ArchError(f"the {name} oracle needs the Python package '{oracle.package}'", None,
                        f"pip install '{oracle.package}=={oracle.version}' (or archdsl[dev])")
    return oracle


def _litert(path: Path, xs: np.ndarray, wanted) -> list[dict[str, np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    out = []
    for x in _model_inputs(xs, detail["dtype"], path):
        it.set_tensor(detail["index"], x[None])
        it.invoke()
        out.append({t: np.array(it.get_tensor(int(t[1:]))) for t in wanted})
    return out


def _tflm(path: Path, xs: np.ndarray, wanted) -> list[dict[str, np.ndarray]]:
    from tflite_micro.python.tflite_micro import runtime

    # the arena: ample (its default, sized from the file, is too small for a tiny model)
    arena = max(4 << 20, 16 * path.stat().st_size)
    it = runtime.Interpreter.from_file(str(path), arena_size=arena,
                                       intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    detail = it.get_input_details(0)
    out = []
    for x in _model_inputs(xs, detail["dtype"], path):
        it.set_input(x[None], 0)
        it.invoke()
        out.append({t: np.array(it.GetTensor(int(t[1:]), 0)["tensor_data"]) for t in wanted})
    return out


def _model_inputs(xs: np.ndarray, dtype, path: Path):
    """The int8 images as the model takes them: as they are, or (a model with float input)
    dequantized with its QUANTIZE's parameters, which quantize them back exactly."""
    if np.dtype(dtype) == np.int8:
        return xs
    scale, zero_point = _float_input_quant(path)
    return (np.float32(scale) * (xs.astype(np.float32) - zero_point)).astype(np.float32)


def _float_input_quant(path: Path):
    """(scale, zero point) of the QUANTIZE after a float input, read from the flatbuffer."""
    from ..importers.tflite import read

    model = read(path)
    q = model.quant.get(model.int8_input) if getattr(model, "int8_input", None) else None
    return (q.scales[0], q.zero_points[0]) if q is not None else (1.0, 0)


_RUNNERS = {"litert": _litert, "tflm": _tflm}


def oracle_tensors(name: str, model_path, x_nhwc: np.ndarray, wanted) -> dict[str, np.ndarray]:
    """Run the oracle on each image of an int8 NHWC batch (one interpreter, one invoke per image);
    the tensors named in `wanted` ("t<index>"), stacked along the batch axis."""
    check_available(name)
    runs = _RUNNERS[name](Path(model_path), np.ascontiguousarray(x_nhwc, dtype=np.int8), list(wanted))
    return {t: np.concatenate([r[t] for r in runs]) for t in wanted}


def to_nchw(a: np.ndarray) -> np.ndarray:
    """A TFLite tensor (NHWC, or (N, C) after a reshape) in the IR's NCHW."""
    a = np.asarray(a)
    if a.ndim == 4:
        return a.transpose(0, 3, 1, 2)
    if a.ndim == 2:
        return a.reshape(a.shape[0], a.shape[1], 1, 1)
    return a


def to_nhwc(q: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(q).transpose(0, 2, 3, 1))


@dataclass
class TensorDiff:
    tensor: str          # the IR tensor (a step's output)
    model_tensor: str    # "t<index>"
    equal: int
    total: int
    max_lsb: int

    @property
    def exact(self) -> bool:
        return self.equal == self.total


def compare(tensor_map: dict[str, str], ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray],
            order: list[str], theirs_nchw: bool = False) -> list[TensorDiff]:
    """Per tensor, in `order`: equal values, total, and the largest difference in LSB. `theirs`
    holds TFLite's NHWC tensors keyed by "t<index>" (or NCHW ones with theirs_nchw)."""
    out = []
    for t in order:
        mt = tensor_map.get(t)
        if mt is None or mt not in theirs or t not in ours:
            continue
        a = np.asarray(ours[t], np.int32)
        b = (np.asarray(theirs[mt]) if theirs_nchw else to_nchw(theirs[mt])).astype(np.int32).reshape(a.shape)
        diff = np.abs(a - b)
        out.append(TensorDiff(t, mt, int((diff == 0).sum()), int(diff.size), int(diff.max(initial=0))))
    return out
