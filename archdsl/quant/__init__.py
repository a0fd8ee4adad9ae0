"""int8 quantization in TFLite's scheme: the reference arithmetic, the quantized IR, PTQ.

Interface (for the backends that run int8):

    archdsl.quant.arithmetic    the integer arithmetic of TFLite's int8 reference kernels, bit for
                                bit, vectorised in NumPy (NumPy only, so generated runtimes can copy
                                it): quantize_multiplier, multiply_by_quantized_multiplier (double
                                rounding), srdhm, rdbpot, activation_range, add_params / add_int8,
                                softmax_params / softmax_int8, avg_pool_divide, quantize_float,
                                dequantize. Its module docstring lists the rounding mode of each.

The scheme (shared/notes/tflite_int8.md §1): real = scale · (q − zero_point); activations int8
per tensor, asymmetric; conv and depthwise weights int8 per output channel, symmetric, in
[−127, 127]; biases int32 with scale float32(in_scale · w_scale[c]); requantization by
(multiplier, shift) pairs from quantize_multiplier.
"""
