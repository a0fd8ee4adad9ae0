"""Unit tests of the hand-written C kernels (codegen_templates/c/runtime), one kernel at a time.

The kernels are built into a shared library (with the project's warning flags, -Werror) and
called through ctypes on random data; each result is checked against an independent NumPy
reference written here in float64 (plain loops over windows, not the project's own code).
Tolerance: float32 accumulation over K terms, |c - ref| <= 1e-5 * (1 + |ref|) * sqrt(K)-ish;
we use atol = rtol = 2e-5 * sqrt(K) with K the number of terms summed per output.
"""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from archdsl.backends import c_target

from conftest import C_BUILDS, c_build_skip

pytestmark = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")

# enum arch_act: ARCH_ACT_NONE = 0, then the registry's activations in order (c_target.ACTIVATIONS)
ACT = {"none": 0, **{name: i + 1 for i, name in enumerate(c_target.ACTIVATIONS)}}


def ref_act(x, act):
    if act == "none":
        return x
    if act == "relu":
        return np.maximum(x, 0)
    if act == "relu6":
        return np.clip(x, 0, 6)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if act == "hsigmoid":
        return np.clip(x + 3, 0, 6) / 6
    if act == "hswish":
        return x * np.clip(x + 3, 0, 6) / 6
    if act == "silu":
        return x / (1 + np.exp(-x))
    raise KeyError(act)


# The kernels are built once per instruction set this machine runs (conftest.C_BUILDS).
@pytest.fixture(scope="module", params=list(C_BUILDS))
def lib(request, tmp_path_factory):
    why = c_build_skip(request.param)
    if why:
        pytest.skip(why)
    rt = tmp_path_factory.mktemp("rt_src")  # the runtime as the C target writes it (enum from the registry)
    for name, text in c_target.runtime_files().items():
        (rt / name).write_text(text)
    out = tmp_path_factory.mktemp("rt") / "librt.so"
    cc = c_target.host_cc()
    cmd = [cc, "-O2", *C_BUILDS[request.param], "-fPIC", "-shared", *c_target.WARN_FLAGS, f"-I{rt}",
           *map(str, sorted(rt.glob("rt_*.c"))), "-lm", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return ctypes.CDLL(str(out))


def fp(a: np.ndarray):
    assert a.dtype == np.float32 and a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def rnd(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(out, ref, k):
    tol = 2e-5 * np.sqrt(max(k, 1)) * max(1.0, float(np.max(np.abs(ref))))
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def guarded(n):
    """A buffer with guard zones, to catch writes outside [0, n)."""
    buf = np.full(n + 64, 12345.0, dtype=np.float32)
    return buf


def check_guard(buf, n):
    assert np.all(buf[n:] == 12345.0), "kernel wrote past the end of its output"


# ---------------------------------------------------------------- references

def ref_conv(x, w, b, groups, stride, pads, out_hw):
    """x (C,H,W), w (Cout, C/g, kh, kw), pads (top, left, bottom, right): a plain window sum."""
    c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    oh, ow = out_hw
    xp = np.zeros((c, h + pads[0] + pads[2], wd + pads[1] + pads[3]))
    xp[:, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x
    out = np.zeros((cout, oh, ow))
    per_g = cout // groups
    for o in range(cout):
        g = o // per_g
        for y in range(oh):
            for xx in range(ow):
                win = xp[g * cg:(g + 1) * cg, y * stride[0]:y * stride[0] + kh, xx * stride[1]:xx * stride[1] + kw]
                out[o, y, xx] = np.sum(win * w[o]) + b[o]
    return out


def out_size(n, k, s, before, after):
    return (n + before + after - k) // s + 1


def ref_pool(x, k, s, pads, out_hw, kind):
    c, h, w = x.shape
    oh, ow = out_hw
    out = np.zeros((c, oh, ow))
    for y in range(oh):
        for xx in range(ow):
            y0, x0 = y * s[0] - pads[0], xx * s[1] - pads[1]
            win = x[:, max(y0, 0):min(y0 + k[0], h), max(x0, 0):min(x0 + k[1], w)]
            out[:, y, xx] = win.reshape(c, -1).mean(1) if kind == "avg" else win.reshape(c, -1).max(1)
    return out


# ---------------------------------------------------------------- conv kernels

CONV_CASES = [
    # cin, h, w, cout, groups, k, stride, pads(t,l,b,r)
    (3, 17, 19, 8, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (3, 16, 16, 5, 1, (3, 3), (2, 2), (0, 0, 1, 1)),  # TF 'same' with stride 2: padding only after
    (4, 9, 7, 6, 2, (3, 3), (1, 1), (1, 1, 1, 1)),  # grouped
    (2, 8, 8, 3, 1, (5, 5), (1, 1), (2, 2, 2, 2)),
    (5, 10, 12, 7, 1, (1, 1), (2, 2), (0, 0, 0, 0)),  # 1x1 stride 2 (ResNet projection)
    (2, 6, 5, 4, 1, (3, 2), (3, 2), (2, 0, 1, 3)),  # odd kernel, stride and padding
    (1, 3, 3, 2, 1, (7, 7), (1, 1), (3, 3, 3, 3)),  # kernel larger than the map
    (6, 11, 11, 9, 3, (1, 7), (1, 1), (0, 3, 0, 3)),
    # wide rows: register blocks of 16 columns plus border and leftover columns
    (3, 40, 45, 8, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (4, 6, 37, 10, 2, (3, 3), (1, 1), (1, 1, 1, 1)),
    (2, 7, 60, 4, 1, (3, 3), (3, 3), (0, 0, 0, 0)),
    (3, 5, 70, 4, 1, (1, 5), (1, 1), (0, 1, 0, 3)),
    # stride 1, same padding: the shifted matrix product, plus border rows/columns and leftover channels
    (5, 9, 23, 19, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (3, 12, 30, 16, 2, (5, 5), (1, 1), (2, 2, 2, 2)),
    (4, 10, 40, 8, 1, (1, 7), (1, 1), (0, 3, 0, 3)),
    (3, 9, 33, 8, 1, (2, 2), (1, 1), (0, 0, 1, 1)),
    (2, 3, 40, 8, 1, (3, 3), (1, 1), (1, 1, 1, 1)),  # one interior row
    # the fast path's tiles: several full tiles of vectors, a masked last one, leftover channels
    (3, 9, 101, 10, 1, (3, 3), (2, 2), (0, 0, 1, 1)),
    (3, 6, 120, 9, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (2, 5, 90, 4, 2, (3, 3), (2, 2), (1, 1, 1, 1)),
    # input channels in several chunks of the fast path's row buffer; a 7x7 stride-2 stem
    (64, 5, 100, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (48, 6, 150, 3, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (3, 20, 40, 8, 1, (7, 7), (2, 2), (3, 3, 3, 3)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"k{c[5]}s{c[6]}p{c[7]}")
@pytest.mark.parametrize("act", ["none", "relu6", "hswish"])
def test_conv2d(lib, case, act):
    cin, h, w, cout, groups, k, s, pads = case
    rng = np.random.default_rng(hash(case) & 0xFFFF)
    x, wt, b = rnd(rng, cin, h, w), rnd(rng, cout, cin // groups, *k), rnd(rng, cout)
    oh, ow = out_size(h, k[0], s[0], pads[0], pads[2]), out_size(w, k[1], s[1], pads[1], pads[3])
    out = guarded(cout * oh * ow)
    lib.arch_conv2d(fp(x), cin, h, w, fp(wt), fp(b), cout, groups, k[0], k[1], s[0], s[1], pads[0], pads[1],
                    fp(out), oh, ow, ACT[act])
    check_guard(out, cout * oh * ow)
    ref = ref_act(ref_conv(x.astype(np.float64), wt, b, groups, s, pads, (oh, ow)), act)
    close(out[:cout * oh * ow].reshape(cout, oh, ow), ref, cin * k[0] * k[1])


DW_CASES = [
    # c, h, w, mult, k, stride, pads
    (4, 12, 12, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (5, 13, 11, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (3, 14, 14, 1, (3, 3), (2, 2), (0, 0, 1, 1)),  # TF same
    (3, 9, 9, 2, (3, 3), (1, 1), (1, 1, 1, 1)),  # channel multiplier
    (2, 10, 8, 1, (5, 5), (2, 2), (2, 2, 2, 2)),
    (2, 1, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1)),  # 1x1 map: only the centre tap
    (2, 2, 3, 1, (3, 3), (1, 1), (1, 1, 1, 1)),  # map narrower than the interior
    (3, 7, 7, 3, (7, 1), (1, 1), (3, 0, 3, 0)),
    (2, 8, 9, 1, (3, 3), (3, 3), (0, 0, 0, 0)),
    # rows of several vectors plus a masked tail, at stride 1 and 2, with and without padding
    (3, 5, 53, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (3, 6, 70, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (2, 7, 67, 1, (3, 3), (2, 2), (0, 0, 1, 1)),
    (2, 4, 35, 1, (3, 3), (2, 2), (0, 0, 0, 0)),
    (2, 6, 34, 2, (3, 3), (1, 1), (0, 0, 0, 0)),
    # small maps (one partial vector per row), stride-2 rows split into even and odd columns, and a
    # plane too big for the fast path's padded copy
    (3, 7, 7, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (3, 3, 3, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (3, 6, 6, 1, (3, 3), (2, 2), (0, 0, 1, 1)),
    (2, 15, 31, 2, (3, 3), (2, 2), (1, 1, 1, 1)),
    (2, 9, 34, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (1, 20, 112, 1, (3, 3), (2, 2), (0, 0, 1, 1)),
    (1, 130, 130, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    # small maps in blocks of a vector's worth of channels (full blocks and a partial one, planes not
    # a whole number of vectors, stride-2 maps with an unread last row and column)
    (20, 7, 7, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (20, 4, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (19, 14, 14, 1, (3, 3), (2, 2), (0, 0, 1, 1)),
    (18, 9, 9, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (17, 8, 8, 1, (3, 3), (2, 2), (0, 0, 0, 0)),
    (33, 7, 7, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
    (3, 40, 5, 1, (3, 3), (1, 1), (1, 1, 1, 1)),  # narrow, but too tall for the block buffer
    # rows wider than the strips take (the padded copy, also with AVX-512)
    (2, 10, 100, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
    (2, 9, 150, 1, (3, 3), (2, 2), (1, 1, 1, 1)),
]


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"k{c[4]}s{c[5]}p{c[6]}")
@pytest.mark.parametrize("act", ["none", "relu"])
def test_conv_dw(lib, case, act):
    c, h, w, m, k, s, pads = case
    rng = np.random.default_rng(hash(case) & 0xFFFF)
    x, wt, b = rnd(rng, c, h, w), rnd(rng, c * m, 1, *k), rnd(rng, c * m)
    oh, ow = out_size(h, k[0], s[0], pads[0], pads[2]), out_size(w, k[1], s[1], pads[1], pads[3])
    n = c * m * oh * ow
    out = guarded(n)
    lib.arch_conv_dw(fp(x), c, h, w, fp(wt), fp(b), m, k[0], k[1], s[0], s[1], pads[0], pads[1],
                     fp(out), oh, ow, ACT[act])
    check_guard(out, n)
    ref = ref_act(ref_conv(x.astype(np.float64), wt, b, c, s, pads, (oh, ow)), act)
    close(out[:n].reshape(c * m, oh, ow), ref, k[0] * k[1])


def panels(wt, panel):
    """The pointwise weight layout, written out element by element (archdsl_rt.h, ARCH_PANEL):
    (co, k) at p0 * cin + k * width + co - p0, p0 the panel's first row, width its rows."""
    cout, cin = wt.shape
    flat = np.full(cout * cin, np.nan, dtype=np.float32)
    for co in range(cout):
        p0 = co // panel * panel
        width = min(panel, cout - p0)
        for k in range(cin):
            flat[p0 * cin + k * width + co - p0] = wt[co, k]
    assert not np.isnan(flat).any()
    return flat


@pytest.mark.parametrize("cin,hw,cout", [
    (1, 1, 1), (3, 5, 2), (8, 49, 16), (16, 196, 13), (32, 100, 70), (7, 33, 9), (2, 40000, 5), (64, 3, 17),
    (24, 47, 40), (5, 17, 37), (9, 200, 64),
    # deep layers on small maps: the fast path's channel tiles (panels of 16), leftover channels and pixels
    (128, 49, 40), (256, 7, 37), (130, 13, 100), (128, 1, 17), (144, 36, 64),
    # AVX2's packed input panel: from 64 input channels up to 1024, above that unpacked
    (72, 130, 21), (1024, 18, 7), (1100, 9, 5),
])
@pytest.mark.parametrize("panel", [1, 16, 5])
@pytest.mark.parametrize("act", ["relu", "relu6", "hswish"])
def test_conv1x1(lib, cin, hw, cout, panel, act):
    rng = np.random.default_rng(cin * 1000 + hw + cout)
    x, wt, b = rnd(rng, cin, hw), rnd(rng, cout, cin), rnd(rng, cout)
    out = guarded(cout * hw)
    lib.arch_conv1x1(fp(x), cin, hw, fp(panels(wt, panel)), panel, fp(b), cout, fp(out), ACT[act])
    check_guard(out, cout * hw)
    ref = ref_act(wt.astype(np.float64) @ x + b[:, None], act)
    close(out[:cout * hw].reshape(cout, hw), ref, cin)


def test_pointwise_packing_is_the_kernel_layout():
    """The compiler's packing (c_target.layout.pack_panels) is the layout the kernels read."""
    from archdsl.backends.c_target.layout import pack_panels

    wt = rnd(np.random.default_rng(0), 37, 11)
    for panel in (1, 5, 16):
        assert np.array_equal(pack_panels(wt[:, :, None, None], panel), panels(wt, panel))


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (7, 3), (64, 10), (1000, 17), (256, 1000), (40, 9)])
def test_fc(lib, n_in, n_out):
    rng = np.random.default_rng(n_in + n_out)
    x, wt, b = rnd(rng, n_in), rnd(rng, n_out, n_in), rnd(rng, n_out)
    out = guarded(n_out)
    lib.arch_fc(fp(x), n_in, fp(wt), fp(b), n_out, fp(out), ACT["sigmoid"])
    check_guard(out, n_out)
    close(out[:n_out], ref_act(wt.astype(np.float64) @ x + b, "sigmoid"), n_in)


# ---------------------------------------------------------------- pooling

POOL_CASES = [
    # c, h, w, k, s, pads
    (3, 8, 8, (2, 2), (2, 2), (0, 0, 0, 0)),
    (2, 9, 7, (3, 3), (2, 2), (1, 1, 1, 1)),  # padding not counted
    (2, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1)),  # max pool / s1 pad=same (GoogLeNet, the concat branch)
    (1, 5, 6, (3, 2), (2, 3), (0, 1, 2, 0)),
    (4, 7, 7, (7, 7), (1, 1), (0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_pool(lib, case, kind):
    c, h, w, k, s, pads = case
    rng = np.random.default_rng(h * w + c)
    x = rnd(rng, c, h, w)
    oh, ow = out_size(h, k[0], s[0], pads[0], pads[2]), out_size(w, k[1], s[1], pads[1], pads[3])
    out = guarded(c * oh * ow)
    fn = lib.arch_avg_pool if kind == "avg" else lib.arch_max_pool
    fn(fp(x), c, h, w, k[0], k[1], s[0], s[1], pads[0], pads[1], fp(out), oh, ow)
    check_guard(out, c * oh * ow)
    close(out[:c * oh * ow].reshape(c, oh, ow), ref_pool(x.astype(np.float64), k, s, pads, (oh, ow), kind), k[0] * k[1])


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool(lib, kind):
    rng = np.random.default_rng(5)
    x = rnd(rng, 6, 7, 5)
    out = guarded(6)
    (lib.arch_global_avg_pool if kind == "avg" else lib.arch_global_max_pool)(fp(x), 6, 35, fp(out))
    check_guard(out, 6)
    ref = x.reshape(6, -1).astype(np.float64)
    close(out[:6], ref.mean(1) if kind == "avg" else ref.max(1), 35)


# ---------------------------------------------------------------- element-wise (also in place)

@pytest.mark.parametrize("act", list(ACT))
def test_activation_in_place_and_apart(lib, act):
    rng = np.random.default_rng(ACT[act])
    x = rnd(rng, 1000) * 5  # covers both sides of every clamp
    ref = ref_act(x.astype(np.float64), act)
    out = guarded(1000)
    lib.arch_activation(fp(x), fp(out), 1000, ACT[act])
    check_guard(out, 1000)
    close(out[:1000], ref, 1)
    lib.arch_activation(fp(x), fp(x), 1000, ACT[act])
    close(x, ref, 1)


@pytest.mark.parametrize("in_place", [False, True])
def test_add(lib, in_place):
    rng = np.random.default_rng(1)
    a, b = rnd(rng, 777), rnd(rng, 777)
    ref = np.maximum(a.astype(np.float64) + b, 0)
    out = a if in_place else guarded(777)
    lib.arch_add(fp(a), fp(b), fp(out), 777, ACT["relu"])
    close(out[:777], ref, 2)


@pytest.mark.parametrize("gate_hw", [1, 20])
@pytest.mark.parametrize("in_place", [False, True])
def test_mul(lib, gate_hw, in_place):
    rng = np.random.default_rng(gate_hw)
    x, g = rnd(rng, 6, 20), rnd(rng, 6, gate_hw)
    ref = x.astype(np.float64) * g
    out = x if in_place else guarded(120)
    lib.arch_mul(fp(x), fp(g), 6, 20, gate_hw, fp(out))
    close(out[:120].reshape(6, 20), ref, 1)


def test_affine_in_place(lib):
    rng = np.random.default_rng(3)
    x, s, t = rnd(rng, 5, 9), rnd(rng, 5), rnd(rng, 5)
    ref = ref_act(x.astype(np.float64) * s[:, None] + t[:, None], "hsigmoid")
    lib.arch_affine(fp(x), fp(s), fp(t), 5, 9, fp(x), ACT["hsigmoid"])
    close(x, ref, 2)


def test_copy(lib):
    x = np.arange(10, dtype=np.float32)
    out = guarded(10)
    lib.arch_copy(fp(x), fp(out), 10)
    check_guard(out, 10)
    assert np.array_equal(out[:10], x)


@pytest.mark.parametrize("c,hw,groups", [(6, 5, 2), (12, 1, 3), (4, 7, 4), (5, 3, 1)])
def test_channel_shuffle(lib, c, hw, groups):
    x = np.arange(c * hw, dtype=np.float32)
    out = guarded(c * hw)
    lib.arch_channel_shuffle(fp(x), fp(out), c, hw, groups)
    check_guard(out, c * hw)
    per = c // groups  # output channel j*groups + i is input channel i*per + j (ShuffleNet's definition)
    ref = np.empty((c, hw), np.float32)
    for i in range(groups):
        for j in range(per):
            ref[j * groups + i] = x.reshape(c, hw)[i * per + j]
    assert np.array_equal(out[:c * hw].reshape(c, hw), ref)


@pytest.mark.parametrize("c,hw", [(10, 1), (1, 4), (7, 9)])
def test_softmax(lib, c, hw):
    rng = np.random.default_rng(c * hw)
    x = rnd(rng, c, hw) * 10
    out = guarded(c * hw)
    lib.arch_softmax(fp(x), c, hw, fp(out))
    check_guard(out, c * hw)
    e = np.exp(x.astype(np.float64) - x.max(0))
    close(out[:c * hw].reshape(c, hw), e / e.sum(0), c)


def test_every_runtime_file_is_tested():
    """Each kernel declared in archdsl_rt.h is called by a test in this file."""
    import re
    from pathlib import Path

    header = (c_target.templates() / "runtime" / c_target.RUNTIME_HEADER).read_text()
    declared = set(re.findall(r"\b(arch_\w+)\(", header))
    here = Path(__file__).read_text()
    untested = sorted(f for f in declared - {"arch_activate"} if f"lib.{f}" not in here)  # activate: every epilogue
    assert untested == [], f"kernels without a unit test: {untested}"
