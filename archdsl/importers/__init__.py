"""Importing trained weights from other frameworks: one module per format, one shared matcher.

    read_model(path) -> ModelGraph          .tflite (tflite.py), .h5 (keras_h5.py), .onnx (onnx_model.py)
    import_weights(graph, path) -> ImportResult   the model's tensors mapped onto the graph's
                                            parameters by structure (the structure package), as float32
                                            arrays keyed by IR parameter names

The readers import their libraries (tflite, h5py, onnx) only when called.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ArchError
from .structure import ImportResult, ModelGraph, match, render_table

READERS = {
    ".tflite": "archdsl.importers.tflite",
    ".h5": "archdsl.importers.keras_h5",
    ".hdf5": "archdsl.importers.keras_h5",
    ".onnx": "archdsl.importers.onnx_model",
}

__all__ = ["READERS", "ImportResult", "ModelGraph", "import_int8_weights", "import_weights", "is_int8_model",
           "read_model", "render_table"]


def read_model(path, limit: int | None = None) -> ModelGraph:
    """The model at `path` (at most `limit` bytes; default inputs.DEFAULT_LIMIT). Raises ArchError."""
    from ..inputs import DEFAULT_LIMIT

    path = Path(path)
    module = READERS.get(path.suffix.lower())
    if module is None:
        hint = "models are .tflite (float), .h5 (Keras 2 full model) or .onnx"
        if path.suffix.lower() == ".keras":
            hint = "a Keras 3 .keras archive: save it as .h5 (model.save('m.h5')) or convert it to .tflite"
        elif path.suffix.lower() in (".npz", ".pt", ".pth"):
            hint = "archdsl weight files need no import: pass them to `archdsl compile --weights`"
        raise ArchError(f"unknown model file type '{path.suffix}'", None, hint)
    if not path.is_file():
        raise ArchError("no such model file" if not path.exists() else "not a file")
    reader = importlib.import_module(module)
    try:
        return reader.read(path, DEFAULT_LIMIT if limit is None else limit)
    except ArchError:
        raise
    except Exception as e:  # a file the reader's library parsed but that breaks an assumption
        raise ArchError(f"cannot read {path.name} as a {reader.FORMAT} model ({type(e).__name__}: {e})", None,
                        "is the file complete? Other exporters' files may need converting first") from None


def import_weights(graph, path) -> ImportResult:
    """Read the model at `path` and map its tensors onto `graph`'s parameters. Raises ArchError."""
    from ..inputs import check_finite, file_limit
    from ..limits import check_buildable

    check_buildable(graph)
    result = match(graph, read_model(path, file_limit(graph)))
    check_finite(result.weights, f"the weights of {Path(path).name}")
    return result


def import_int8_weights(graph, path):
    """(ImportResult, int8 weight dict, {IR tensor: model tensor}) of a full-int8 model at `path`,
    its quantization kept exactly (importers/int8.py). Raises ArchError, also for a float model."""
    from ..inputs import file_limit
    from .int8 import import_int8

    model = read_model(path, file_limit(graph))
    if not is_int8_model(model):
        raise ArchError(f"{Path(path).name} is not a full-int8 model (its input is float)", None,
                        "float models import into float weights: archdsl import SPEC MODEL -o float.npz")
    result = match(graph, model)
    weights, tensor_map = import_int8(graph, model, result)
    return result, weights, tensor_map


def is_int8_model(model: ModelGraph) -> bool:
    return hasattr(model, "quant")
