"""NumPy kernels of the generated NumPy runtime.

Every function here is real, tested code; `archdsl compile --target numpy` copies
the ones a network needs into the generated file (with the helpers they call), so
the generated runtime depends on NumPy alone. Rules for this module:

- each kernel uses only `np` and the other functions of this module (no module
  constants, no other imports), so its source can be copied as it is;
- tensors are float32 NCHW batches; a kernel returns a new array and never
  writes into its inputs;
- `act` is an activation kernel (or None) run in place on the fresh result,
  the epilogue of a fused conv + BN + activation step;
- activations take `out=`: None for a new array, or the array to write into.

The reference semantics of every op (unfused, float64) live in
archdsl/backends/numpy_target.py; these kernels are tested against it and
against torch.
"""
import numpy as np


# ---------------------------------------------------------------- helpers


def pad_hw(x, pads, value=0.0):
    """Pad H and W of an NCHW array by pads = (top, left, bottom, right) with `value`."""
    top, left, bottom, right = pads
    if not (top or left or bottom or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def bias_act(y, b, act):
    """The epilogue of a fused step, in place: y += b (per channel, axis 1), then act(y)."""
    y += b.reshape((1, -1) + (1,) * (y.ndim - 2))
    if act is not None:
        act(y, out=y)
    return y


def window_taps(xp, kernel, stride, out_hw):
    """Yield the kh*kw strided views of padded input `xp` that one window position reads,
    as (i, j, view), each view of shape (N, C, OH, OW)."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def window_out_hw(xp, kernel, stride):
    """Output height and width of a window op over the padded input `xp`."""
    return ((xp.shape[2] - kernel[0]) // stride[0] + 1, (xp.shape[3] - kernel[1]) // stride[1] + 1)


def window_counts(size, k, s, before, out):
    """How many real (not padding) elements each of `out` windows covers along one axis."""
    starts = np.arange(out) * s - before
    counts = np.minimum(starts + k, size) - np.maximum(starts, 0)
    return np.maximum(counts, 1).astype(np.float32)


# ---------------------------------------------------------------- convolutions and fc


def conv1x1(x, w, b, stride, pads, act=None):
    """1x1 convolution (groups = 1) as one matrix product per image:
    (Cout, Cin) @ (Cin, H*W). w: (Cout, Cin, 1, 1), b: (Cout,)."""
    x = pad_hw(x, pads)
    if stride != (1, 1):
        x = x[:, :, ::stride[0], ::stride[1]]
    n, c, h, wd = x.shape
    cout = w.shape[0]
    y = np.matmul(w.reshape(cout, c), x.reshape(n, c, h * wd))
    return bias_act(y, b, act).reshape(n, cout, h, wd)


def conv2d(x, w, b, stride, pads, groups=1, act=None):
    """KxK convolution with any groups, by im2col and one batched matrix product.
    w: (Cout, Cin/groups, kh, kw), b: (Cout,)."""
    xp = pad_hw(x, pads)
    n = x.shape[0]
    cout, cg, kh, kw = w.shape
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1]]  # (N, Cin, OH, OW, kh, kw), a view
    oh, ow = win.shape[2], win.shape[3]
    cols = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(0, 1, 2, 5, 6, 3, 4)
    cols = cols.reshape(n, groups, cg * kh * kw, oh * ow)  # the one copy: im2col
    y = np.matmul(w.reshape(groups, cout // groups, cg * kh * kw), cols)
    return bias_act(y.reshape(n, cout, oh * ow), b, act).reshape(n, cout, oh, ow)


def conv_dw(x, w, b, stride, pads, act=None):
    """Depthwise convolution: one KxK filter per channel, as kh*kw shifted multiply-adds.
    w: (C*m, 1, kh, kw) with channel multiplier m (output channel o reads input o // m)."""
    cout, _, kh, kw = w.shape
    if cout != x.shape[1]:
        x = np.repeat(x, cout // x.shape[1], axis=1)
    xp = pad_hw(x, pads)
    oh, ow = window_out_hw(xp, (kh, kw), stride)
    y = np.empty((x.shape[0], cout, oh, ow), dtype=np.float32)
    tmp = np.empty_like(y)
    for i, j, tap in window_taps(xp, (kh, kw), stride, (oh, ow)):
        wij = w[:, 0, i, j].reshape(1, cout, 1, 1)
        if i == 0 and j == 0:
            np.multiply(tap, wij, out=y)
        else:
            np.multiply(tap, wij, out=tmp)
            y += tmp
    return bias_act(y, b, act)


def fc(x, w, b, act=None):
    """Fully connected: the input flattened in C, H, W order times w.T. w: (out, in).
    Returns (N, out, 1, 1)."""
    n = x.shape[0]
    y = np.matmul(x.reshape(n, -1), w.T)
    return bias_act(y, b, act).reshape(n, -1, 1, 1)


def scale_shift(x, scale, shift, act=None):
    """A batch norm that could not be folded, as x * scale + shift per channel
    (scale = gamma / sqrt(var + eps), shift = beta - mean * scale)."""
    y = x * scale.reshape(1, -1, 1, 1)
    return bias_act(y, shift, act)


# ---------------------------------------------------------------- pooling


def max_pool(x, kernel, stride, pads):
    """Max over KxK windows; padding never wins (it is -inf)."""
    xp = pad_hw(x, pads, -np.inf)
    oh, ow = window_out_hw(xp, kernel, stride)
    y = None
    for _, _, tap in window_taps(xp, kernel, stride, (oh, ow)):
        if y is None:
            y = tap.copy()
        else:
            np.maximum(y, tap, out=y)
    return y


def avg_pool(x, kernel, stride, pads):
    """Mean over KxK windows; padding is not counted (count_include_pad=False)."""
    xp = pad_hw(x, pads)
    oh, ow = window_out_hw(xp, kernel, stride)
    y = None
    for _, _, tap in window_taps(xp, kernel, stride, (oh, ow)):
        if y is None:
            y = tap.copy()
        else:
            y += tap
    rows = window_counts(x.shape[2], kernel[0], stride[0], pads[0], oh)
    cols = window_counts(x.shape[3], kernel[1], stride[1], pads[1], ow)
    y /= rows[:, None] * cols[None, :]
    return y


def global_avg_pool(x):
    """Mean over the whole map: (N, C, H, W) -> (N, C, 1, 1)."""
    return x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)


def global_max_pool(x):
    """Max over the whole map: (N, C, H, W) -> (N, C, 1, 1)."""
    return x.max(axis=(2, 3), keepdims=True)


# ---------------------------------------------------------------- joins and shapes


def add(a, b, act=None):
    """a + b (equal shapes), then the fused activation if any."""
    y = a + b
    if act is not None:
        act(y, out=y)
    return y


def mul(x, gate):
    """x * gate; the gate is (N, C, 1, 1) (broadcast over the map) or x's shape."""
    return x * gate


def concat(*xs):
    """Join along channels."""
    return np.concatenate(xs, axis=1)


def flatten(x):
    """(N, C, H, W) -> (N, C*H*W, 1, 1), in C, H, W order."""
    return x.reshape(x.shape[0], -1, 1, 1)


def softmax(x):
    """Softmax over channels (axis 1)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def channel_slice(x, first, end):
    """Channels [first, end) (a channel split), as a new array."""
    return x[:, first:end].copy()


def channel_shuffle(x, groups):
    """ShuffleNet's shuffle: the channels as (groups, C / groups), transposed."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4)).reshape(n, c, h, w)


# ---------------------------------------------------------------- activations


def relu(x, out=None):
    """max(x, 0)"""
    return np.maximum(x, 0, out=out)


def relu6(x, out=None):
    """min(max(x, 0), 6)"""
    return np.clip(x, 0, 6, out=out)


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1, e)
    y /= 1 + e
    if out is None:
        return y
    out[...] = y
    return out


def silu(x, out=None):
    """x * sigmoid(x)"""
    y = sigmoid(x)
    return np.multiply(x, y, out=y if out is None else out)


def hsigmoid(x, out=None):
    """relu6(x + 3) / 6"""
    y = np.clip(x + 3, 0, 6)
    return np.divide(y, 6, out=y if out is None else out)


def hswish(x, out=None):
    """x * relu6(x + 3) / 6"""
    y = np.clip(x + 3, 0, 6)
    y *= x
    return np.divide(y, 6, out=y if out is None else out)
