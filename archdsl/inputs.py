"""Reading untrusted files: one bounded reader for every input archdsl takes.

Specs, weight files (.npz, .pt, .onnx), model files (.tflite, .h5, .onnx) and input arrays
(.npy) are downloaded from anywhere. Each is read here, with a size cap proportional to what
the spec needs, and with the formats' ways of reaching outside the file refused:

    read_bytes(path, limit, what)      at most `limit` bytes of any file (a device, a pipe, a huge file)
    read_spec(path) -> str             UTF-8 text, a decoding error reported at its line and column
    file_limit(graph)                  the cap for a weight or model file of `graph`
    load_npz(path, limit)              plain arrays only: no pickle, every member's header checked
                                       against its data (truncation, zip bombs, absurd shapes)
    load_npy(path, limit)              one plain array, header checked the same way
    onnx_model(path, limit)            the ModelProto; tensors kept in external files refused
    onnx_array(tensor)                 one of its tensors as an array (a damaged one refused)
    open_h5(path, limit)               an h5py.File; external storage, virtual datasets and
                                       external links refused, every dataset's size checked
    torch_state(path, limit)           torch.load(weights_only=True) of a size-checked file
    check_finite(weights, source)      NaN / Inf refused, naming the file and the tensors

Every refusal is an ArchError that says what was refused and why.
"""
from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

from .errors import ArchError, Loc

SPEC_LIMIT = 4 << 20          # a spec is a few KB of text; 4 MiB is generous
MIN_FILE_LIMIT = 64 << 20     # headroom for a weight/model file's structure (graph, names, metadata)
DEFAULT_LIMIT = 1 << 30       # when no spec says how big a file may be
INPUT_IMAGES = 4096           # the most images `run` reads from one .npy


def count_text(n: int) -> str:
    """1,234,567 or, past 10^15, 1.23e+21 (exact digits of a 300-digit count help no one)."""
    if n < 10**15:
        return f"{n:,}"
    digits = str(n)
    return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def size_text(n: int) -> str:
    for unit, step in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= step:
            return f"{n / step:,.1f} {unit}" if n < step << 40 else f"{count_text(n // step)} {unit}"
    return f"{n:,} bytes"


def read_bytes(path, limit: int, what: str = "file") -> bytes:
    """The bytes of `path`, refusing anything over `limit` (checked before and while reading,
    so /dev/zero or a growing pipe stops at the cap)."""
    path = Path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise ArchError(f"{path} is a folder, not a {what}")
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            raise ArchError(f"{path} is {size_text(st.st_size)}, more than a {what} may be ({size_text(limit)})",
                            None, "is it the right file?")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ArchError(f"no such {what}: {path}") from None
    except IsADirectoryError:
        raise ArchError(f"{path} is a folder, not a {what}") from None
    except OSError as e:
        raise ArchError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > limit:
        raise ArchError(f"{path} holds more than a {what} may ({size_text(limit)}); reading stopped there",
                        None, "is it the right file? (a device or a pipe never ends)")
    return data


def read_spec(path) -> str:
    data = read_bytes(path, SPEC_LIMIT, "spec file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        err = ArchError(f"not UTF-8 text (byte 0x{data[e.start]:02x})",
                        Loc(line, col), "save the spec as UTF-8")
        raise err.with_source(str(path), data.decode("utf-8", "replace")) from None


def file_limit(graph) -> int:
    """A weight or model file of `graph` holds its parameters (float64 at worst, twice over for
    models that keep a folded and an unfolded copy) and some structure: anything larger is refused."""
    params = sum(spec.numel for _, spec in graph.parameters())
    return MIN_FILE_LIMIT + 16 * params


# ---------------------------------------------------------------- .npy / .npz

def _npy_header(f, where: str):
    import numpy as np  # here, not at the top: `stats` and `check` read specs without numpy
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f, max_header_size=10000)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f, max_header_size=10000)
        raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError) as e:
        raise ArchError(f"{where} is not a plain .npy array ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                        None, "save arrays with numpy.save / numpy.savez") from None


def _read_array(f, where: str, budget: int) -> np.ndarray:
    """One .npy stream: the header, then exactly the bytes it declares (no more is read)."""
    import numpy as np
    shape, fortran, dtype = _npy_header(f, where)
    if dtype.hasobject:
        raise ArchError(f"{where} is not a plain .npy array: it holds pickled objects, which are never loaded", None,
                        "save plain float arrays: archdsl.weights.save_npz or np.savez")
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    if nbytes > budget:
        raise ArchError(f"{where} declares shape {tuple(shape)} of {dtype} ({size_text(nbytes)}), more than "
                        f"this file may hold ({size_text(budget)})", None, "is it the right file?")
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise ArchError(f"{where} is truncated: its header declares shape {tuple(shape)} of {dtype} "
                        f"({nbytes:,} bytes), the data has {len(data):,}", None, "is the file complete?")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)


def load_npz(path, limit: int) -> dict[str, np.ndarray]:
    """{key: array} of an .npz: at most `limit` bytes of file and of uncompressed data in all."""
    data = read_bytes(path, limit, "weight file")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception:  # BadZipFile, NotImplementedError (an unknown zip version), ValueError, ...
        raise ArchError("not a readable .npz file (not a zip archive)", None,
                        "save weights with archdsl.weights.save_npz or np.savez") from None
    out: dict[str, np.ndarray] = {}
    budget = limit
    with zf:
        for info in zf.infolist():
            if not info.filename or info.filename.endswith("/"):
                continue
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            where = f"member '{info.filename}'"
            try:
                with zf.open(info) as member:
                    arr = _read_array(member, where, budget)
            except ArchError:
                raise
            except Exception as e:  # zipfile and zlib errors of a damaged member
                raise ArchError(f"not a readable .npz file: {where} is damaged ({type(e).__name__}: {e})") from None
            budget -= arr.nbytes
            out[key] = arr
    return out


def load_npy(path, limit: int) -> np.ndarray:
    data = read_bytes(path, limit, "input file")
    if data[:2] == b"PK":
        raise ArchError(f"{path} is an .npz archive; give one array as .npy")
    return _read_array(io.BytesIO(data), str(path), limit)


def input_limit(graph) -> int:
    """An input .npy holds at most INPUT_IMAGES images of `graph`, as float64."""
    return 4096 + 8 * INPUT_IMAGES * graph.input_shape.numel


# ---------------------------------------------------------------- ONNX

def onnx_model(path, limit: int):
    """The ModelProto of `path`, read from at most `limit` bytes, without external data."""
    try:
        import onnx
    except ImportError:
        raise ArchError("reading .onnx files needs the Python package 'onnx'", None,
                        "pip install 'archdsl[onnx]'") from None
    data = read_bytes(path, limit, "ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf DecodeError and friends
        raise ArchError(f"{Path(path).name} is not a readable ONNX model ({type(e).__name__})", None,
                        "models are .tflite, .h5 (Keras) or .onnx") from None
    for tensor in _onnx_tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise ArchError(f"refused: tensor '{tensor.name}' keeps its data in the external file '{location}', "
                            "and archdsl never reads files a model points to", None,
                            "save the model with its weights inside: onnx.save_model(m, path, "
                            "save_as_external_data=False)")
    return model


def onnx_array(tensor) -> np.ndarray:
    """A TensorProto as an array; a damaged one (unknown type, data of the wrong size) an ArchError."""
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except Exception as e:  # KeyError for an unknown data type, ValueError for a size mismatch, ...
        raise ArchError(f"tensor '{tensor.name}' is not readable ({type(e).__name__}: {str(e)[:200]})", None,
                        "is the model file complete?") from None


def _onnx_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _onnx_tensors(attr.g)
            for g in attr.graphs:
                yield from _onnx_tensors(g)


# ---------------------------------------------------------------- HDF5

def open_h5(path, limit: int):
    """An h5py.File of `path` (at most `limit` bytes) whose every dataset lives inside the file."""
    try:
        import h5py
    except ImportError:
        raise ArchError("reading .h5 files needs the Python package 'h5py'", None,
                        "pip install 'archdsl[import]'") from None
    data = read_bytes(path, limit, "model file")
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError:
        raise ArchError(f"{Path(path).name} is not an HDF5 file", None,
                        "models are .tflite, .h5 (Keras) or .onnx") from None
    problems: list[str] = []

    def visit(name, link):
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"'{name}' is an external link to {link.filename!r}")
            return
        if isinstance(link, h5py.SoftLink):
            return  # resolved inside the file; its target is visited on its own
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                problems.append(f"dataset '{name}' is virtual (its data lives in other files)")
            elif obj.external:
                problems.append(f"dataset '{name}' keeps its data in the external file {obj.external[0][0]!r}")
            elif obj.size * obj.dtype.itemsize > limit:
                problems.append(f"dataset '{name}' declares {size_text(obj.size * obj.dtype.itemsize)}")

    try:
        f.visititems_links(visit)
    except Exception as e:  # a damaged file
        f.close()
        raise ArchError(f"{Path(path).name} is not a readable HDF5 file ({type(e).__name__})") from None
    if problems:
        f.close()
        raise ArchError(f"refused: {problems[0]}; archdsl reads only data stored inside the file", None,
                        "save the model again with model.save('model.h5')",
                        notes=[(None, p) for p in problems[1:10]])
    return f


# ---------------------------------------------------------------- PyTorch

def torch_state(path, limit: int):
    """torch.load(weights_only=True) of a file no larger than `limit`."""
    import torch

    data = read_bytes(path, limit, "weight file")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------- values

def check_finite(weights: dict, source: str) -> None:
    """Refuse NaN and infinite weights, naming the file and (up to ten of) the tensors."""
    import numpy as np
    bad = []
    for key in sorted(weights):
        arr = np.asarray(weights[key])
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            n = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            bad.append(f"{key}: {n:,} of {arr.size:,} values are NaN or infinite")
    if bad:
        raise ArchError(f"{source}: {len(bad)} tensor(s) hold NaN or infinite values, which no target can "
                        f"compute with: {', '.join(b.split(':')[0] for b in bad[:10])}"
                        + (", ..." if len(bad) > 10 else ""), None,
                        "were the weights saved after a diverged training run?",
                        notes=[(None, b) for b in bad[:10]])
