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


def conv_model(weight: np.ndarray, bias: np.ndarray, input_hwc, weight_quant=None, stride=1) -> bytes:
    """float input [1, H, W, C] -> CONV_2D (SAME, fused RELU) -> float output. `weight` is OHWI:
    float32, or int8 with weight_quant = (scales, zero points, axis): a dynamic-range conv."""
    b = flatbuffers.Builder(1024)
    h, w, c = input_hwc
    o, kh, kw, _ = weight.shape
    oh, ow = -(-h // stride), -(-w // stride)
    blobs = [b"", weight.tobytes(), bias.astype(np.float32).tobytes()]
    buffers = []
    for blob in blobs:
        data = None
        if blob:
            data = b.CreateByteVector(blob)
        tflite.BufferStart(b)
        if data is not None:
            tflite.BufferAddData(b, data)
        buffers.append(tflite.BufferEnd(b))
    wtype = tflite.TensorType.INT8 if weight.dtype == np.int8 else tflite.TensorType.FLOAT32
    specs = [("input", (1, h, w, c), tflite.TensorType.FLOAT32, 0, None),
             ("conv/weight", weight.shape, wtype, 1, weight_quant),
             ("conv/bias", (o,), tflite.TensorType.FLOAT32, 2, None),
             ("output", (1, oh, ow, o), tflite.TensorType.FLOAT32, 0, None)]
    tensors = []
    for name, shape, ttype, buf, quant in specs:
        n = b.CreateString(name)
        sh = _ints(b, tflite.TensorStartShapeVector, shape)
        q = _quant(b, *quant) if quant is not None else None
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, sh)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, n)
        if q is not None:
            tflite.TensorAddQuantization(b, q)
        tensors.append(tflite.TensorEnd(b))
    tflite.Conv2DOptionsStart(b)
    tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME)
    tflite.Conv2DOptionsAddStrideW(b, stride)
    tflite.Conv2DOptionsAddStrideH(b, stride)
    tflite.Conv2DOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.RELU)
    tflite.Conv2DOptionsAddDilationWFactor(b, 1)
    tflite.Conv2DOptionsAddDilationHFactor(b, 1)
    options = tflite.Conv2DOptionsEnd(b)
    ins = _ints(b, tflite.OperatorStartInputsVector, [0, 1, 2])
    outs = _ints(b, tflite.OperatorStartOutputsVector, [3])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.Conv2DOptions)
    tflite.OperatorAddBuiltinOptions(b, options)
    op = tflite.OperatorEnd(b)
    tvec = _vector(b, tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    ovec = _vector(b, tflite.SubGraphStartOperatorsVector, [op], b.PrependUOffsetTRelative)
    sin = _ints(b, tflite.SubGraphStartInputsVector, [0])
    sout = _ints(b, tflite.SubGraphStartOutputsVector, [3])
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tvec)
    tflite.SubGraphAddInputs(b, sin)
    tflite.SubGraphAddOutputs(b, sout)
    tflite.SubGraphAddOperators(b, ovec)
    sg = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.CONV_2D)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.CONV_2D)
    tflite.OperatorCodeAddVersion(b, 2 if wtype == tflite.TensorType.INT8 else 1)
    code = tflite.OperatorCodeEnd(b)
    codes = _vector(b, tflite.ModelStartOperatorCodesVector, [code], b.PrependUOffsetTRelative)
    sgs = _vector(b, tflite.ModelStartSubgraphsVector, [sg], b.PrependUOffsetTRelative)
    bufs = _vector(b, tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    desc = b.CreateString("archdsl test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, sgs)
    tflite.ModelAddBuffers(b, bufs)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
