"""int8 quantization in TFLite's scheme: the reference arithmetic, the quantized IR, PTQ.

Interface for the backends that run int8 (C, ONNX QDQ, stats):

    from archdsl.quant.weights_file import is_int8_weights, load_int8
    from archdsl.quant.network import QuantizedNetwork

    weights = load_int8(path, graph)             # checked int8 weight dict (format: weights_file.py)
    net = QuantizedNetwork.build(graph, weights)  # raises ArchError on an op without an int8 rule
    net.input, net.output                        # QParams(scale, zero_point) of the boundary
    for q in net.steps:                          # one int8 kernel call each, in execution order
        q.kind                                   # conv | fc | add | concat | avgpool | maxpool |
                                                 # reshape | softmax | clamp   (the op class's
                                                 # `int8` rule, archdsl/ops; type in rules.py)
        q.inputs, q.output, q.ins, q.out         # tensor names and their QParams
        q.arrays  # conv/fc: weight int8 (IR layout), bias int32, multiplier int32, shift int32 (per O)
        q.attrs   # act_min/act_max, kernel/stride/pads/groups, in_zero_point/out_zero_point;
                  # add: multipliers ((m1,e1),(m2,e2),(mo,eo)), in_zero_points; softmax:
                  # input_multiplier, left_shift, diff_min; concat: multipliers per input

    archdsl.quant.runtime.run_int8(net, q, fc_requant="tflm", keep=True) -> (out, {tensor: int8})
                                     the NumPy reference every int8 target is compared with
    archdsl.quant.oracles            TFLM / LiteRT BUILTIN_REF runs and the per-tensor comparison

    archdsl.quant.arithmetic    the integer arithmetic of TFLite's int8 reference kernels, bit for
                                bit, vectorised in NumPy (NumPy only, so generated runtimes can copy
                                it): quantize_multiplier, multiply_by_quantized_multiplier (double
                                rounding), srdhm, rdbpot, activation_range, add_params / add_int8,
                                softmax_params / softmax_int8, avg_pool_divide, quantize_float,
                                dequantize. Its module docstring lists the rounding mode of each.
    archdsl.quant.kernels       the int8 NumPy kernels (NCHW), one per rule kind

The multipliers and shifts are computed in network.py only; a backend copies them out. A dead
channel has multiplier 0 and shift 0 (TFLite's flush for shifts below −31): its output is the
output zero point, and no kernel may shift by more than 31.

The scheme (shared/notes/tflite_int8.md §1, docs/int8.md): real = scale · (q − zero_point);
activations int8 per tensor, asymmetric; conv and depthwise weights int8 per output channel,
symmetric, in [−127, 127]; biases int32 with scale float32(in_scale · w_scale[c]).
"""
