"""A tiny .tflite writer for tests: one CONV_2D (or a chain) built with the schema's flatbuffer
builders from the `tflite` package, so that model kinds not shipped in shared/models (a
dynamic-range quantized conv) can be made and run in LiteRT."""
from __future__ import annotations

import flatbuffers
import numpy as np
import tflite


def _vector(b, start, items, add):
    start(b, len(items))
    for item in reversed(items):
        add(item)
    return b.EndVector()


def _ints(b, start, values):
    return _vector(b, start, [int(v) for v in values], b.PrependInt32)


def _quant(b, scales, zero_points, axis):
    scale = _vector(b, lambda bb, n: tflite.QuantizationParametersStartScaleVector(bb, n), list(scales),
                    b.PrependFloat32)
    zp = _vector(b, lambda bb, n: tflite.QuantizationParametersStartZeroPointVector(bb, n),
                 [int(z) for z in zero_points], b.PrependInt64)
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, scale)
    tflite.QuantizationParametersAddZeroPoint(b, zp)
    tflite.QuantizationParametersAddQuantizedDimension(b, axis)
    return tflite.QuantizationParametersEnd(b)


def build(tensors, operators, inputs, outputs) -> bytes:
    """A one-subgraph model. tensors: [(name, shape, TensorType, data bytes or None, quant or None)];
    operators: [(BuiltinOperator, inputs, outputs, conv options or None)]."""
    b = flatbuffers.Builder(1024)
    buffers, tensor_offsets = [], []
    blobs = [b""] + [data for (_, _, _, data, _) in tensors if data]
    for blob in blobs:
        data = b.CreateByteVector(blob) if blob else None
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffers.append(tflite.BufferEnd(b))
    next_buffer = 1
    for name, shape, ttype, data, quant in tensors:
        n = b.CreateString(name)
        sh = _ints(b, tflite.TensorStartShapeVector, shape)
        q = _quant(b, *quant) if quant is not None else None
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, sh)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, next_buffer if data else 0)
        next_buffer += 1 if data else 0
        tflite.TensorAddName(b, n)
        if q is not None:
            tflite.TensorAddQuantization(b, q)
        tensor_offsets.append(tflite.TensorEnd(b))
    codes = sorted({code for code, _, _, _ in operators})
    op_offsets = []
    for code, ins, outs, conv in operators:
        options = None
        if conv is not None:
            stride, act = conv
            tflite.Conv2DOptionsStart(b)
            tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME)
            tflite.Conv2DOptionsAddStrideW(b, stride)
            tflite.Conv2DOptionsAddStrideH(b, stride)
            tflite.Conv2DOptionsAddFusedActivationFunction(b, act)
            tflite.Conv2DOptionsAddDilationWFactor(b, 1)
            tflite.Conv2DOptionsAddDilationHFactor(b, 1)
            options = tflite.Conv2DOptionsEnd(b)
        iv = _ints(b, tflite.OperatorStartInputsVector, ins)
        ov = _ints(b, tflite.OperatorStartOutputsVector, outs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(code))
        tflite.OperatorAddInputs(b, iv)
        tflite.OperatorAddOutputs(b, ov)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.Conv2DOptions)
            tflite.OperatorAddBuiltinOptions(b, options)
        op_offsets.append(tflite.OperatorEnd(b))
    tvec = _vector(b, tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
    ovec = _vector(b, tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
    sin = _ints(b, tflite.SubGraphStartInputsVector, inputs)
    sout = _ints(b, tflite.SubGraphStartOutputsVector, outputs)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tvec)
    tflite.SubGraphAddInputs(b, sin)
    tflite.SubGraphAddOutputs(b, sout)
    tflite.SubGraphAddOperators(b, ovec)
    sg = tflite.SubGraphEnd(b)
    code_offsets = []
    for code in codes:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, code)
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 3 if code == tflite.BuiltinOperator.CONV_2D else 2)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    cvec = _vector(b, tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
    sgs = _vector(b, tflite.ModelStartSubgraphsVector, [sg], b.PrependUOffsetTRelative)
    bufs = _vector(b, tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    desc = b.CreateString("archdsl test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, cvec)
    tflite.ModelAddSubgraphs(b, sgs)
    tflite.ModelAddBuffers(b, bufs)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


T, OP, ACT = tflite.TensorType, tflite.BuiltinOperator, tflite.ActivationFunctionType


def conv_model(weight: np.ndarray, bias: np.ndarray, input_hwc, weight_quant=None, stride=1) -> bytes:
    """float input [1, H, W, C] -> CONV_2D (SAME, fused RELU) -> float output. `weight` is OHWI:
    float32, or int8 with weight_quant = (scales, zero points, axis): a dynamic-range conv."""
    h, w, c = input_hwc
    o = weight.shape[0]
    oh, ow = -(-h // stride), -(-w // stride)
    wtype = T.INT8 if weight.dtype == np.int8 else T.FLOAT32
    tensors = [("input", (1, h, w, c), T.FLOAT32, None, None),
               ("conv/weight", weight.shape, wtype, weight.tobytes(), weight_quant),
               ("conv/bias", (o,), T.FLOAT32, bias.astype(np.float32).tobytes(), None),
               ("output", (1, oh, ow, o), T.FLOAT32, None, None)]
    return build(tensors, [(OP.CONV_2D, [0, 1, 2], [3], (stride, ACT.RELU))], [0], [3])


def int8_conv_model(q_weight, w_scales, q_bias, in_q, out_q, input_hwc, float_io=False, act=ACT.RELU6, stride=1):
    """A full-int8 CONV_2D (per-channel weights, int32 bias); with float_io, QUANTIZE of a float
    input before it and DEQUANTIZE of its output after it (a converter's default float I/O)."""
    h, w, c = input_hwc
    o = q_weight.shape[0]
    oh, ow = -(-h // stride), -(-w // stride)
    bias_scales = (np.float32(in_q[0]) * np.asarray(w_scales, np.float32)).astype(np.float32)
    tensors = [("input", (1, h, w, c), T.FLOAT32, None, None),
               ("input_int8", (1, h, w, c), T.INT8, None, ([in_q[0]], [in_q[1]], 0)),
               ("conv/weight", q_weight.shape, T.INT8, q_weight.tobytes(), (w_scales, [0] * o, 0)),
               ("conv/bias", (o,), T.INT32, q_bias.astype(np.int32).tobytes(), (bias_scales, [0] * o, 0)),
               ("output_int8", (1, oh, ow, o), T.INT8, None, ([out_q[0]], [out_q[1]], 0)),
               ("output", (1, oh, ow, o), T.FLOAT32, None, None)]
    conv = (OP.CONV_2D, [1, 2, 3], [4], (stride, act))
    if float_io:
        return build(tensors, [(OP.QUANTIZE, [0], [1], None), conv, (OP.DEQUANTIZE, [4], [5], None)], [0], [5])
    return build(tensors, [conv], [1], [4])
