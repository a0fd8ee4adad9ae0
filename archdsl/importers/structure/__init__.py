"""The structural matcher: a trained model's tensors onto a spec's parameters, by graph structure.

Names mean nothing across frameworks (`conv2d_5`, `model/conv2d_5/Conv2D`, `onnx::Conv_17`), so the
match uses only what both sides agree on: the order of operations and the shapes of the weights.

1. Each format's reader (tflite.py, keras_h5.py, onnx_model.py) turns the model into a ModelGraph:
   a list of ModelOps, each of one *kind* (conv, dwconv, gconv, dense, bn, add, mul, concat, an
   activation, a pool; `pass` for pure data movement such as reshape/flatten/dropout, `pad` for
   explicit zero padding), with its parameter tensors as stored and their layout (OHWI, HWIO, ...).
   Fused activations (TFLite's RELU on a CONV_2D, Keras' Dense(activation='softmax')) become ops of
   their own.
2. Both graphs, the spec's IR and the model, are put in one canonical execution order: a
   depth-first walk back from the output, where the inputs of a commutative join (add, mul) are
   taken deepest branch first (the residual body before its shortcut). A model whose converter
   listed the shortcut first, or wrote `add(shortcut, body)`, gives the same sequence as the spec.
   `pass` ops are contracted away.
3. The two sequences are aligned item by item (kind and weight shape in the IR layout); the first
   difference is reported on the spec row it concerns: a wrong shape, a row the model lacks, or
   model layers the spec lacks. Then each pair is checked in detail (bias, BN size and eps, stride,
   padding) and its tensors are converted to the IR layout.

BatchNorm, "as the source has it": when the model has no BN at all but the spec has BN after its
convolutions (TFLite and most converted graphs fold BN into the conv), the model's folded weight
and bias go into the conv and the BN is set to the identity: γ = 1, β = 0, mean = 0 and
var = 1 − eps, so that γ/√(var + eps) = 1. A conv without bias puts the folded bias into β instead.
A model with BN layers (Keras .h5, an ONNX export of a training graph) maps them one to one.

The package, by concern: kinds.py (the op kinds), layouts.py (weight layouts), model.py (the
model side), order.py (the canonical order), diagnostics.py (how differences are worded),
matcher.py (alignment and pairing), table.py (the mapping table).
"""
from __future__ import annotations

from .kinds import (ACT_KINDS, BN_LOCALS, COMMUTATIVE, CONTRACTED, IR_KINDS, JOIN_KINDS, KIND_WORDS, MAIN_KINDS,
                    PARAM_KINDS, POOL_KINDS, conv_kind, format_names)
from .layouts import LAYOUTS, fmt_shape, ir_shape_of
from .matcher import ImportResult, MapRow, match
from .model import ModelGraph, ModelOp, ModelTensor
from .order import _G, canonical_order
from .table import render_table
