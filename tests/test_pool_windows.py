"""Non-square pool windows: the stride defaults to the window, axis by axis (docs/language.md),
in `stats` and in every target.

The oracle is torch.nn.functional's pooling called with the window written in the spec and no
stride (torch's own default is the window, per axis), on padding computed here from the
documented rules; nothing is read back from the graph's attributes.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import parse_text

from archdsl import backends
from archdsl.errors import ArchError
from archdsl.weights import init_weights

# (row as written, pad as (top, left, bottom, right) from the documented rule, input h x w)
WINDOWS = [
    ("avg pool 2x1", (0, 0, 0, 0)),
    ("max pool 1x2", (0, 0, 0, 0)),
    ("max pool 3x2 pad=same", (1, 0, 1, 1)),  # same: (k-1)//2 before, k//2 after
    ("avg pool 2x3 pad=same_tf", None),  # TF SAME with the stride (2, 3): computed below
    ("avg pool / s1 2x3", (0, 0, 0, 0)),  # an explicit stride applies to both axes
]


def _same_tf(k, s, n):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def test_stats_shape_of_non_square_windows():
    """The issue's own cases: on a 4x4 map, avg pool 2x1 is 2x4 (was 2x2), max pool 1x2 is 4x2 (was 4x3)."""
    for row, (h, w) in [("avg pool 2x1", (2, 4)), ("max pool 1x2", (4, 2)), ("max pool 3x1", (1, 4)),
                        ("avg pool / s1 2x1", (3, 4)), ("max pool 1x3 pad=same", (4, 2))]:
        out = parse_text(f"network t()\ninput 4x4x1\n{row}\n").nodes[-1].out_shape
        assert (out.h, out.w) == (h, w), row


def test_stride_zero_is_an_error_for_pools_too():
    with pytest.raises(ArchError, match="stride must be at least 1, got 0"):
        parse_text("network t()\ninput 4x4x1\nmax pool / s0 2x2\n")


def test_global_pool_takes_no_stride():
    with pytest.raises(ArchError, match="global pool has no stride"):
        parse_text("network t()\ninput 4x4x1\nglobal max pool / s2\n")


def _torch_pool(x, row: str, pads):
    import torch
    import torch.nn.functional as F

    words = row.split()
    kind = words[0]
    kh, kw = (int(v) for v in next(w for w in words if "x" in w and w[0].isdigit()).split("x"))
    stride = 1 if "/" in words else None  # torch's default: the window
    t, l, b, r = pads
    if kind == "max":
        return F.max_pool2d(F.pad(x, (l, r, t, b), value=float("-inf")), (kh, kw), stride)
    total = F.avg_pool2d(F.pad(x, (l, r, t, b)), (kh, kw), stride) * (kh * kw)
    count = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), (l, r, t, b)), (kh, kw), stride) * (kh * kw)
    return total / count  # padding is not counted in averages


@pytest.mark.parametrize("target", ["reference", "numpy", "torch", "onnx", "c"])
@pytest.mark.parametrize("row,pads", WINDOWS, ids=[w[0] for w in WINDOWS])
def test_non_square_window_in_every_target(tmp_path, target, row, pads):
    torch = pytest.importorskip("torch")
    h, w = 7, 12
    if pads is None:  # TF SAME, the stride being the window (2, 3)
        (t, b), (l, r) = _same_tf(2, 2, h), _same_tf(3, 3, w)
        pads = (t, l, b, r)
    spec = f"network t()\ninput {h}x{w}x3\nconv 1x1x3x4\n{row}\n"
    graph = parse_text(spec)
    weights = init_weights(graph, seed=1)
    x = np.random.default_rng(2).standard_normal((2, 3, h, w)).astype(np.float32)
    conv = graph.nodes[0]
    with torch.no_grad():
        y = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)),
                                       torch.from_numpy(weights[conv.param_key("weight")].astype(np.float64)))
        expected = _torch_pool(y, row, pads).numpy()
    out_shape = graph.nodes[-1].out_shape
    assert (out_shape.c, out_shape.h, out_shape.w) == expected.shape[1:], "stats disagrees with torch"
    if target == "reference":
        from archdsl.backends.numpy_target import reference_forward

        out, _ = reference_forward(graph, weights, x)
    else:
        mod = backends.load(target)
        why = mod.unavailable()
        if why:
            pytest.skip(why)
        mod.compile(graph, weights, tmp_path, "t")
        out = mod.run(tmp_path, "t", x)
    np.testing.assert_allclose(np.asarray(out, np.float64).reshape(expected.shape), expected, rtol=1e-4, atol=1e-5)
