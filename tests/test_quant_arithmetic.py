"""The int8 reference arithmetic (archdsl/quant/arithmetic.py) against independent oracles.

Oracles: scalar transliterations of the C code written here with Python integers (C truncating
division, the signed nudge, the mask/threshold form of RoundingDivideByPOT), which share nothing
with the vectorised NumPy forms under test; the parameter values printed in
shared/notes/tflite_int8.md (read from the shipped MLPerf Tiny models); and, for the softmax, the
LiteRT 2.3.0 BUILTIN_REF kernel itself run on the real models.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from archdsl.quant import arithmetic as A

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def c_div(a: int, b: int) -> int:
    """C integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def py_quantize_multiplier(m: float) -> tuple[int, int]:
    """quantization_util.cc QuantizeMultiplier, line by line."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(math.copysign(math.floor(abs(q * (1 << 31)) + 0.5), q))  # TfRound
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def py_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def py_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def py_mbqm(x: int, q: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return py_rdbpot(py_srdhm(x * (1 << left), q), right)


def test_quantize_multiplier_matches_the_c_transliteration():
    rng = np.random.default_rng(1)
    reals = np.concatenate([10.0 ** rng.uniform(-14, 1, 4000), [0.5, 1.0, 0.999999999999, 2 ** -32, 2 ** -31.5,
                                                                   1 - 2 ** -33, 0.0]])
    q, e = A.quantize_multiplier(reals)
    for r, qi, ei in zip(reals, q, e):
        assert (int(qi), int(ei)) == py_quantize_multiplier(float(r)), r


def test_quantize_multiplier_flushes_dead_channels_and_carries():
    q, e = A.quantize_multiplier(np.array([1e-12, 1 - 2 ** -34]))
    assert (int(q[0]), int(e[0])) == (0, 0)          # shift < -31: flushed, not a 64-bit shift
    assert (int(q[1]), int(e[1])) == (1 << 30, 1)    # rounds up to 2^31: halved, exponent + 1
    with pytest.raises(ValueError):
        A.quantize_multiplier(-0.5)


def test_parameters_printed_in_the_note():
    # shared/notes/tflite_int8.md §1, from the shipped models
    assert A.softmax_params(0.0146362185) == (2011586560, 20, -1984)       # VWW
    assert A.softmax_params(0.171853513) == (1476210432, 24, -124)         # ResNet-8
    assert A.add_params(0.0393935516, 0.104194961, 0.0509456731) == (
        (1623821475, -2), (1073741824, 0), (1098017566, -17))              # ResNet-8 op 3
    assert A.activation_range("relu", 0.02, -128) == (-128, 127)
    assert A.activation_range("relu", 0.02, -3) == (-3, 127)
    assert A.activation_range("relu6", 6 / 255, -128) == (-128, 127)
    assert A.activation_range("relu6", 0.05, -100) == (-100, 20)


def _pairs(n: int, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    b = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    # exact ties of the 2^31 division: a·b ≡ 2^30 (mod 2^31)
    ta = rng.integers(-(1 << 15), 1 << 15, n) * 2 + 1
    tb = np.full(n, 1 << 30)
    return np.concatenate([a, ta, [INT32_MIN, INT32_MIN, INT32_MAX]]), np.concatenate([b, tb, [INT32_MIN, -1, INT32_MAX]])


def test_srdhm_and_rdbpot_match_the_c_transliteration():
    a, b = _pairs(3000, 2)
    got = A.srdhm(a, b)
    assert [int(v) for v in got] == [py_srdhm(int(x), int(y)) for x, y in zip(a, b)]
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 3000), np.arange(-64, 65)])
    for e in (0, 1, 2, 5, 12, 23, 31):
        assert [int(v) for v in A.rdbpot(x, e)] == [py_rdbpot(int(v), e) for v in x], e


def test_mbqm_is_double_rounding_not_single():
    rng = np.random.default_rng(4)
    acc = rng.integers(-(1 << 20), 1 << 20, 5000)
    q = rng.integers(1 << 30, INT32_MAX, 5000)
    shift = rng.integers(-12, 1, 5000)
    got = A.multiply_by_quantized_multiplier(acc, q, shift)
    want = [py_mbqm(int(x), int(m), int(s)) for x, m, s in zip(acc, q, shift)]
    assert [int(v) for v in got] == want
    single = [(int(x) * int(m) + (1 << (30 - int(s)))) >> (31 - int(s)) for x, m, s in zip(acc, q, shift)]
    assert want != single  # the control: the two roundings do differ on these inputs


def test_mbqm_of_a_flushed_multiplier_is_zero():
    assert int(A.multiply_by_quantized_multiplier(np.int64(123456), 0, 0)) == 0


def test_avg_pool_divide_rounds_half_away():
    sums = np.array([32, -32, 31, -31, 33, 0, 95, -96])
    got = A.avg_pool_divide(sums, 64)
    assert [int(v) for v in got] == [c_div(s + 32 if s > 0 else s - 32, 64) for s in sums.tolist()]
    assert [int(v) for v in got] == [1, -1, 0, 0, 1, 0, 1, -2]


def test_quantize_float_rounds_half_away_and_saturates():
    q = A.quantize_float(np.array([0.5, -0.5, 1.5, 1000.0, -1000.0]), 1.0, 0)
    assert q.tolist() == [1, -1, 2, 127, -128]
    assert A.dequantize(np.array([-128, 0]), 0.5, -128).tolist() == [0.0, 64.0]


_LITERT = None


def _litert_softmax_pairs(models_dir, name, count=20):
    """(softmax input, softmax output) of LiteRT 2.3.0 BUILTIN_REF on `count` random inputs."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    it = litert.Interpreter(model_path=str(models_dir / name),
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                            experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    op = it._get_ops_details()[-1]
    assert op["op_name"] == "SOFTMAX"
    details = {d["index"]: d for d in it.get_tensor_details()}
    scale = float(details[op["inputs"][0]]["quantization_parameters"]["scales"][0])
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(7)
    ins, outs = [], []
    for _ in range(count):
        it.set_tensor(inp["index"], rng.integers(-128, 128, size=inp["shape"], dtype=np.int8))
        it.invoke()
        ins.append(it.get_tensor(op["inputs"][0]).copy())
        outs.append(it.get_tensor(op["outputs"][0]).copy())
    return scale, np.concatenate(ins), np.concatenate(outs)


@pytest.mark.parametrize("name", ["vww/vww_96_int8.tflite", "ic/pretrainedResnet_quant.tflite"])
def test_softmax_equals_litert_builtin_ref(models_dir, name):
    scale, x, want = _litert_softmax_pairs(models_dir, name)
    got = A.softmax_int8(x, *A.softmax_params(scale))
    assert got.dtype == np.int8 and np.array_equal(got, want)
