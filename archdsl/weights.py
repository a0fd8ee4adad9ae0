"""The weight format: one dict {IR parameter key: float32 ndarray}, stored as `.npz`.

Keys are the IR's parameter keys (`conv3.conv.weight`, `conv3.bn.running_var`),
which are also the PyTorch state_dict keys of the generated module, so a
`torch.save(model.state_dict())` file loads as it is. A weight file is untrusted
input: `.npz` is read without pickle and `.pt` with `torch.load(weights_only=True)`.

    init_weights(graph, seed)        seeded init that keeps every layer near unit scale (BN statistics randomised too)
    load_weights(path, graph)        .npz | .pt | .onnx, checked against the graph like a strict load
    save_npz(weights, path)          deterministic bytes (sorted keys, fixed zip timestamps)
    fold_bn(graph, steps, weights)   {step.main.name: (weight, bias)} with BN folded in float64
"""
from __future__ import annotations

import io
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import ArchError
from .ir import Graph

IGNORED_KEYS = ("num_batches_tracked",)  # torch BatchNorm bookkeeping, not a weight

# ---------------------------------------------------------------- init


def _rng(seed: int, key: str) -> np.random.Generator:
    """One generator per parameter: a key's values depend only on (seed, key, shape),
    so adding a layer does not change the weights of the others."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))])


def _draw(key: str, local: str, shape: tuple[int, ...], role: str, seed: int) -> np.ndarray:
    """A parameter's values before scaling, in float64."""
    rng = _rng(seed, key)
    if role == "weight":
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if len(shape) == 2:  # fc: uniform by fan-in (PyTorch's Linear default scale)
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, size=shape)
        return rng.standard_normal(size=shape) * np.sqrt(2.0 / fan_in)  # conv: He-normal
    if role == "bias":
        return rng.uniform(-0.1, 0.1, size=shape)
    if role == "bn_affine":
        return rng.uniform(0.5, 1.5, size=shape) if local == "weight" else rng.normal(0.0, 0.1, size=shape)
    if role == "bn_stats":
        return rng.uniform(0.5, 1.5, size=shape) if local == "running_var" else rng.normal(0.0, 0.1, size=shape)
    return rng.normal(0.0, 0.1, size=shape)  # an unknown role: small values, still deterministic


def _octave(power: float) -> int:
    """log2 of a mean square, rounded to a whole number: scales are whole octaves of power
    (half octaves of amplitude), so a last-bit difference in a measured sum (BLAS blocking
    differs between machines) does not change a weight."""
    return round(math.log2(power)) if power > 0 else 0


def _amplitude(octaves: int) -> float:
    """sqrt(2 ** octaves), exactly rounded on every machine."""
    return math.ldexp(math.sqrt(2.0) if octaves % 2 else 1.0, octaves // 2)


def _mean_square(x: np.ndarray) -> float:
    return float(np.mean(np.square(x))) if x.size else 0.0


def init_weights(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded weights for every parameter of `graph` (float32) that keep every layer's output
    near unit scale on a unit-variance input, however deep the network.

    Draws: conv He-normal N(0, 2/fan_in); fc U(±1/√fan_in); biases U(±0.1);
    BN: γ ~ U(0.5, 1.5), β ~ N(0, 0.1), running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5),
    so that folding BN into the conv before it is really exercised.
    Scaling (a variance-preserving init measured, not assumed): the reference runs once on a
    seeded N(0, 1) batch (one image, up to 8 for
    maps under 64x64) and, node by node, each conv/fc weight is multiplied by the power of √2
    that brings the mean square of its output (bias left out) nearest 1, and each BN's
    running_var by the mean square of what reaches it (running_mean by its root). He-normal
    alone keeps the scale through conv-ReLU stacks only; linear bottlenecks, gates, residual sums
    and BN statistics that do not match their input grew MnasNet-like networks' logits to ~1e5.
    Draws happen in float64 and scales are whole octaves, so the values are the same on every
    machine; a layer's values depend on (seed, key, shape) and on the layers before it only.
    A graph too large to build is refused first (limits.check_buildable).
    """
    from .backends.common import lowering_for
    from .backends.numpy_target import REFERENCE, reference_forward
    from .limits import check_buildable

    check_buildable(graph)

    values = {key: _draw(key, key.rsplit(".", 1)[1], tuple(spec.shape), spec.role, seed)
              for key, spec in graph.parameters()}

    def settle(node, xs, y):
        if "running_var" in node.params:  # BN: statistics of what really reaches it
            octaves = _octave(_mean_square(xs[0]))
            values[node.param_key("running_var")] *= 2.0 ** octaves
            values[node.param_key("running_mean")] *= _amplitude(octaves)
            return lowering_for(REFERENCE, node.op, "numpy reference", node.name)(node, values, xs)
        if "weight" in node.params and node.params["weight"].role == "weight":
            bias = values[node.param_key("bias")].reshape(1, -1, 1, 1) if "bias" in node.params else 0.0
            octaves = -_octave(_mean_square(y - bias))
            values[node.param_key("weight")] *= _amplitude(octaves)
            return (y - bias) * _amplitude(octaves) + bias
        return y

    c, h, w = graph.input_shape.chw
    images = min(8, -(-4096 // (h * w)))  # small maps are averaged over a few images
    x = _rng(seed, "calibration input").standard_normal((images, c, h, w))
    reference_forward(graph, values, x, settle=settle)
    return {key: np.ascontiguousarray(v, dtype=np.float32) for key, v in values.items()}


# ---------------------------------------------------------------- load


def _load_npz(path: Path, limit: int) -> dict[str, np.ndarray]:
    from .inputs import load_npz

    return load_npz(path, limit)


def _load_pt(path: Path, limit: int) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ArchError(f"reading {path.name} needs PyTorch", None,
                        "pip install 'archdsl[torch]', or convert the weights to .npz") from None
    import pickle

    from .inputs import torch_state

    try:
        obj = torch_state(path, limit)
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False; never repeat that, keep its diagnosis only
        text = str(e)
        called = re.search(r"GLOBAL ([\w.]+)", text)
        m = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\.\s|\n|$)", text)
        detail = m.group(1).strip() if m else type(e).__name__
        if called or "global" in detail.lower():
            what = f"it calls {called.group(1)}" if called else detail
            raise ArchError(f"refused to load: the file holds code, not just tensors ({what})", None,
                            "weight files are loaded with torch.load(weights_only=True); save a plain "
                            "model.state_dict() with torch.save") from None
        raise ArchError(f"not a readable PyTorch file ({detail})") from None
    except Exception as e:  # torch raises RuntimeError / EOFError / zipfile errors for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ArchError(f"not a readable PyTorch file ({first})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # a common checkpoint layout
    if not isinstance(obj, dict):
        raise ArchError(f"the file holds a {type(obj).__name__}, not a state_dict", None,
                        "save model.state_dict(), not the model")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ArchError(f"entry '{key}' is a {type(value).__name__}, not a tensor", None,
                            "save model.state_dict(), not a training checkpoint")
        out[str(key)] = value.detach().cpu().numpy()
    return out


def _load_onnx(path: Path, limit: int) -> dict[str, np.ndarray]:
    from .inputs import onnx_array, onnx_model

    model = onnx_model(path, limit)
    out: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        arr = onnx_array(init)
        if not np.issubdtype(arr.dtype, np.floating):
            continue  # shape constants (Reshape/Flatten targets), not weights
        out[init.name] = arr
    return out


_LOADERS = {".npz": _load_npz, ".pt": _load_pt, ".pth": _load_pt, ".onnx": _load_onnx}


def check_weights(weights: dict[str, np.ndarray], graph: Graph, source: str = "weights") -> dict[str, np.ndarray]:
    """Match `weights` against the graph like torch's strict load_state_dict: every
    missing, unexpected and wrongly-shaped key is reported at once. Returns float32 arrays."""
    wanted = {key: tuple(spec.shape) for key, spec in graph.parameters()}
    named = {(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): v for k, v in weights.items()}
    given = {k: v for k, v in named.items() if k.rsplit(".", 1)[-1] not in IGNORED_KEYS}
    missing = [k for k in wanted if k not in given]
    unexpected = sorted(k for k in given if k not in wanted)
    wrong = [(k, tuple(np.shape(given[k])), wanted[k]) for k in wanted
             if k in given and tuple(np.shape(given[k])) != wanted[k]]
    bad_type = [(k, np.asarray(given[k]).dtype) for k in wanted
                if k in given and not np.issubdtype(np.asarray(given[k]).dtype, np.floating)]
    if missing or unexpected or wrong or bad_type:
        problems = []
        if missing:
            problems.append(f"missing keys ({len(missing)}): {_listed(missing)}")
        if unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
        for k, have, need in wrong[:LISTED]:
            problems.append(f"shape mismatch for {k}: the file has {_fmt(have)}, the spec needs {_fmt(need)}")
        if len(wrong) > LISTED:
            problems.append(f"... and {len(wrong) - LISTED} more shape mismatches")
        for k, dtype in bad_type[:LISTED]:
            problems.append(f"{k} has dtype {dtype}, expected a floating-point array")
        summary = "; ".join(p.split(":")[0] for p in problems)
        raise ArchError(f"{source} do not match {graph.name}: {summary}", None,
                        "were the weights saved for the same spec and the same --set values?",
                        notes=[(None, p) for p in problems])
    return {k: np.ascontiguousarray(np.asarray(given[k]), dtype=np.float32) for k in wanted}


LISTED = 20  # names listed in one message; a file with 10,000 stray keys still gives a short one


def _listed(keys: list[str]) -> str:
    more = f", ... and {len(keys) - LISTED} more" if len(keys) > LISTED else ""
    return ", ".join(keys[:LISTED]) + more


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def load_weights(path, graph: Graph) -> dict[str, np.ndarray]:
    """Read `.npz` (canonical), `.pt`/`.pth` (a PyTorch state_dict, weights_only) or `.onnx`
    (float initializers by name) and check it against `graph`. Raises ArchError on any mismatch."""
    from .limits import check_buildable

    check_buildable(graph)
    path = Path(path)
    try:
        return _load_checked(path, graph)
    except ArchError as err:
        raise err.with_source(str(path), None) from None


def _load_checked(path: Path, graph: Graph) -> dict[str, np.ndarray]:
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ArchError(f"unknown weight file type '{path.suffix}'", None,
                        "weights are .npz (canonical), .pt (a PyTorch state_dict) or .onnx")
    if not path.is_file():
        raise ArchError("no such weight file" if not path.exists() else "not a file")
    from .inputs import check_finite, file_limit

    weights = check_weights(loader(path, file_limit(graph)), graph, "the weights")
    check_finite(weights, "the weights")
    return weights


# ---------------------------------------------------------------- save

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the zip epoch: no timestamp in the bytes


def npz_bytes(weights: dict[str, np.ndarray], keep_dtype: bool = False) -> bytes:
    """The bytes of an .npz holding `weights` (float32, or each array's own dtype with keep_dtype;
    sorted keys, fixed timestamps): readable by np.load, identical for identical weights."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(weights):
            arr = np.asarray(weights[key], dtype=None if keep_dtype else np.float32, order="C")  # keeps 0-d
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def save_npz(weights: dict[str, np.ndarray], path) -> Path:
    """Write `weights` as an .npz with deterministic bytes (atomically)."""
    from .fsutil import write_files_atomically

    path = Path(path)
    return write_files_atomically(path.parent if str(path.parent) else Path("."), {path.name: npz_bytes(weights)})[0]


# ---------------------------------------------------------------- BN folding


def bn_scale_shift(bn, weights: dict) -> tuple[np.ndarray, np.ndarray]:
    """A BN node as a per-channel affine map y = x·scale + shift, in float64:
    scale = γ/√(var + eps), shift = β − mean·scale. Folding and the runtimes' unfolded BN share it."""
    def get(local: str) -> np.ndarray:
        return np.asarray(weights[bn.param_key(local)], dtype=np.float64)

    scale = get("weight") / np.sqrt(get("running_var") + float(bn.attrs.eps))
    return scale, get("bias") - get("running_mean") * scale


def fold_bn(graph: Graph, steps, weights: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{step.main.name: (weight, bias)} for every step whose main op folds BN (conv, conv dw, fc).

    With a BN folded into the step: scale = γ/√(var+eps), W' = W·scale (per output channel),
    b' = (b − mean)·scale + β. Without one, W and b (zeros when the layer has no bias).
    Computed in float64, returned as float32.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for step in steps:
        main = step.main
        if not main.op.folds_bn:
            continue
        w = np.asarray(weights[main.param_key("weight")], dtype=np.float64)
        cout = w.shape[0]
        b = (np.asarray(weights[main.param_key("bias")], dtype=np.float64) if "bias" in main.params
             else np.zeros(cout, dtype=np.float64))
        if step.bn is not None:
            scale, shift = bn_scale_shift(step.bn, weights)
            w = w * scale.reshape((cout,) + (1,) * (w.ndim - 1))
            b = b * scale + shift
        out[main.name] = (np.ascontiguousarray(w, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32))
    return out
