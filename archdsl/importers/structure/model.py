"""The model side: what each format's reader (tflite.py, keras_h5.py, onnx_model.py) produces."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

@dataclass
class ModelTensor:
    """One parameter tensor of the model, as stored, and the name of its layout (see LAYOUTS)."""

    name: str
    array: np.ndarray
    layout: str


@dataclass
class ModelOp:
    name: str                 # the op's or layer's name in the model
    label: str                # its type in the model's own words: CONV_2D, Conv2D, Conv
    kind: str
    inputs: list[str]         # activation tensors only (constants are in params)
    output: str
    params: dict[str, ModelTensor] = field(default_factory=dict)  # IR local name -> tensor
    stride: tuple[int, int] | None = None
    padding: object = None    # "same" (TensorFlow SAME), (top, left, bottom, right), or None: unknown
    eps: float | None = None  # bn
    pads: tuple[int, int, int, int] | None = None  # kind "pad"

    def describe(self) -> str:
        return f"{self.label} '{self.name}'"

    def short(self) -> str:
        """The label and a readable name: converters join several names with ';' (TFLite), keep
        the part that names a layer."""
        parts = [p for p in self.name.split(";") if p]
        if len(parts) > 1:
            layer_words = ("conv", "dense", "matmul", "depthwise", "add", "pool", "softmax")
            named = [p for p in parts if any(w in p.rsplit("/", 1)[-1].lower() for w in layer_words)]
            name = (named or parts)[0] + ";…"
        else:
            name = self.name
        return f"{self.label} '{name}'" if name else self.label


@dataclass
class ModelGraph:
    format: str               # "TFLite", "Keras .h5", "ONNX"
    ops: list[ModelOp]
    input: str
    output: str
    input_hwc: tuple[int, int, int] | None
    flatten: str = "hwc"      # the order in which the model flattens a feature map for a dense layer
