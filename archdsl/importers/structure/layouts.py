"""Weight layouts: a model's tensor (OHWI, HWIO, ...) in the IR layout."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from .model import ModelTensor

def _perm(order: tuple[int, ...]):
    return (lambda shape: tuple(shape[i] for i in order), lambda a: np.transpose(a, order))


def _hwcm_shape(s):
    return (s[2] * s[3], 1, s[0], s[1])


def _hwcm_array(a):
    h, w, c, m = a.shape
    return np.transpose(a, (2, 3, 0, 1)).reshape(c * m, 1, h, w)


# layout name -> (shape in the model -> shape in the IR, array -> array). IR layouts: conv (O, I/g, kh, kw),
# depthwise (C·m, 1, kh, kw), dense (out, in), vectors (C,).
LAYOUTS: dict[str, tuple[Callable, Callable]] = {
    "OIHW": _perm((0, 1, 2, 3)),   # ONNX, PyTorch
    "OHWI": _perm((0, 3, 1, 2)),   # TFLite CONV_2D
    "1HWC": _perm((3, 0, 1, 2)),   # TFLite DEPTHWISE_CONV_2D (C = channels x multiplier)
    "HWIO": _perm((3, 2, 0, 1)),   # Keras Conv2D
    "HWCM": (_hwcm_shape, _hwcm_array),  # Keras DepthwiseConv2D (kh, kw, C, multiplier)
    "OI": _perm((0, 1)),           # TFLite FULLY_CONNECTED, ONNX Gemm(transB=1)
    "IO": _perm((1, 0)),           # Keras Dense, ONNX MatMul / Gemm(transB=0)
    "C": _perm((0,)),
}


def ir_shape_of(t: "ModelTensor") -> tuple[int, ...] | None:
    shape = tuple(int(d) for d in t.array.shape)
    rank = {"C": 1, "OI": 2, "IO": 2}.get(t.layout, 4)
    if len(shape) != rank:
        return None
    return tuple(LAYOUTS[t.layout][0](shape))


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")" if shape is not None else "?"
