"""The int8 weight file: an `.npz` (no pickle) that `import` and `quantize` write and every int8
target reads. Version 1 (docs/int8.md describes it for users):

    __format__                  str   "archdsl-int8"
    __version__                 int32 1
    @<tensor>.scale             float32 ()   for the network input and every fused step's output
    @<tensor>.zero_point        int32 ()     in [-128, 127]
    <node>.weight               int8         conv / conv dw / fc, BN folded in; IR layout
                                             (O, I/groups, kh, kw) or (O, I), symmetric (zero point 0)
    <node>.weight_scale         float32 (O,) per output channel, or (1,) per tensor
    <node>.bias                 int32 (O,)   scale float32(input scale · weight scale[c]), zero point 0

<tensor> is a node name of the IR (`conv3.relu`: the tensor the fused step conv + BN + ReLU writes);
<node> is the main node of a step (`conv3.conv`). The requantization multipliers and shifts are
not stored: the compiler derives them (network.py), as TFLite's kernels do.

    int8_schema(graph) -> {key: (dtype, shape)}
    is_int8_weights(path) -> bool
    load_int8(path, graph) -> dict          read with the bounded .npz reader, checked
    check_int8(weights, graph, source)      every missing, unexpected, mistyped or misshaped key
    is_int8_dict(weights) -> bool           an int8 dict (it carries __format__) or a float one
    save_int8(weights, path)                deterministic bytes, atomic
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import ArchError
from ..ir import Graph

FORMAT = "archdsl-int8"
VERSION = 1
META_KEYS = ("__format__", "__version__")


def tensor_key(tensor: str, what: str) -> str:
    return f"@{tensor}.{what}"


def int8_schema(graph: Graph) -> dict[str, tuple[type, tuple[int, ...]]]:
    """The keys an int8 weight file for `graph` holds, with their dtype and shape."""
    from .network import tensor_names, weight_steps

    schema: dict[str, tuple[type, tuple[int, ...]]] = {}
    for t in tensor_names(graph):
        schema[tensor_key(t, "scale")] = (np.float32, ())
        schema[tensor_key(t, "zero_point")] = (np.int32, ())
    for step in weight_steps(graph):
        main = step.main
        shape = tuple(main.params["weight"].shape)
        schema[main.param_key("weight")] = (np.int8, shape)
        schema[main.param_key("bias")] = (np.int32, (shape[0],))
        schema[main.param_key("weight_scale")] = (np.float32, (shape[0],))
    return schema


def is_int8_weights(path) -> bool:
    """Does the .npz at `path` say it is an int8 weight file? (Reads only the member list.)"""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return "__format__.npy" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def check_int8(weights: dict[str, np.ndarray], graph: Graph, source: str = "the int8 weights") -> dict:
    """The weights, checked against `graph`'s int8 schema (all problems at once). Raises ArchError."""
    fmt = weights.get("__format__")
    if fmt is None or str(np.asarray(fmt)) != FORMAT:
        raise ArchError(f"{source} are not an archdsl int8 weight file (no __format__ '{FORMAT}')", None,
                        "write one with `archdsl import SPEC model_int8.tflite` or `archdsl quantize`")
    version = weights.get("__version__")
    if version is None or np.asarray(version).shape != () or int(np.asarray(version)) != VERSION:
        raise ArchError(f"{source}: int8 weight format version {version!r}; this archdsl reads version {VERSION}")
    schema = int8_schema(graph)
    given = {k: v for k, v in weights.items() if k not in META_KEYS}
    problems = []
    missing = [k for k in schema if k not in given]
    unexpected = sorted(k for k in given if k not in schema)
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    out = {}
    for key, (dtype, shape) in schema.items():
        if key not in given:
            continue
        arr = np.asarray(given[key])
        want_shape = shape
        if key.endswith(".weight_scale") and arr.shape == (1,):
            want_shape = (1,)  # per tensor
        if arr.dtype != np.dtype(dtype) or arr.shape != want_shape:
            problems.append(f"{key} is {arr.dtype} {tuple(arr.shape)}, the spec needs {np.dtype(dtype)} {want_shape}")
            continue
        if dtype is np.float32 and not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            problems.append(f"{key}: scales must be finite and positive")
        if key.endswith(".zero_point") and not -128 <= int(arr) <= 127:
            problems.append(f"{key}: zero point {int(arr)} is outside [-128, 127]")
        out[key] = arr
    if problems:
        summary = "; ".join(p.split(":")[0] for p in problems)
        raise ArchError(f"{source} do not match {graph.name}: {summary}", None,
                        "were the weights made for the same spec and the same --set values?",
                        notes=[(None, p) for p in problems])
    out["__format__"], out["__version__"] = np.array(FORMAT), np.array(VERSION, dtype=np.int32)
    return out


def is_int8_dict(weights: dict) -> bool:
    """Is this weight dict an int8 one (as load_int8, import and quantize return)?"""
    return "__format__" in weights


def load_int8(path, graph: Graph) -> dict[str, np.ndarray]:
    from ..inputs import file_limit, load_npz

    path = Path(path)
    try:
        if not path.is_file():
            raise ArchError("no such weight file" if not path.exists() else "not a file")
        return check_int8(load_npz(path, file_limit(graph)), graph)
    except ArchError as err:
        raise err.with_source(str(path), None) from None


def save_int8(weights: dict[str, np.ndarray], path) -> Path:
    """Write an int8 weight dict (without the meta keys; they are added) atomically."""
    from ..fsutil import write_files_atomically
    from ..weights import npz_bytes

    data = dict(weights)
    data["__format__"] = np.array(FORMAT)
    data["__version__"] = np.array(VERSION, dtype=np.int32)
    path = Path(path)
    return write_files_atomically(path.parent if str(path.parent) else Path("."),
                                  {path.name: npz_bytes(data, keep_dtype=True)})[0]
