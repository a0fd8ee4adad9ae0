"""What every backend shares: the lowering lookup and its error, the input batch check, number
literals in generated text, and the jinja environment of the templates.

A backend's lowering table is keyed by op class (archdsl.ops); `lowering_for` walks the op's
class hierarchy, so a subclass (global avg pool of avg pool) shares its parent's lowering unless
the table names it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArchError


class InputShapeError(ArchError, ValueError):
    """An input batch of the wrong shape (a ValueError too, for callers of the Python API)."""


def no_lowering(backend: str, op, node_name: str) -> ArchError:
    return ArchError(f"the {backend} target has no lowering for '{op.name}' (layer {node_name})", None,
                     "every op needs one entry in each backend's LOWERINGS (docs/architecture.md, Adding an op)")


def lowering_for(table: dict, op, backend: str, node_name: str):
    """The entry of `table` for `op` (by class, nearest first); the shared error if there is none."""
    for cls in type(op).__mro__:
        if cls in table:
            return table[cls]
    raise no_lowering(backend, op, node_name)


def has_lowering(table: dict, op) -> bool:
    return any(cls in table for cls in type(op).__mro__)


def check_batch(x, chw: tuple[int, int, int], network: str | None = None, dtype=np.float32,
                batch_only: bool = False) -> np.ndarray:
    """x as a float32 (or `dtype`) NCHW batch (N, C, H, W) of the network's input shape `chw`; one image
    (C, H, W) becomes a batch of one unless `batch_only` (the ONNX and torch runs take batches, as
    their models do). Otherwise an InputShapeError that says what was expected."""
    x = np.asarray(x)
    c, h, w = (int(d) for d in chw)
    if x.shape == (c, h, w) and not batch_only:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
        hint = None
        if x.ndim in (3, 4) and x.shape[-1] == c and tuple(x.shape[-3:-1]) == (h, w):
            hint = "the array looks NHWC: transpose it to NCHW, e.g. x.transpose(0, 3, 1, 2)"
        one = "" if batch_only else f"({c}, {h}, {w}) or "
        raise InputShapeError(f"the input has shape {tuple(x.shape)}, but {network or 'the model'} takes "
                              f"{one}(N, {c}, {h}, {w}) (NCHW)", None, hint)
    return np.ascontiguousarray(x, dtype=dtype)


def number(value: Any) -> str:
    """A number as generated text writes it: ints as they are, floats with %.9g (which round-trips
    a float32 and keeps 3/7 = 0.428571429 readable), always with a '.' or an exponent."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = "%.9g" % float(value)
        return text if any(ch in text for ch in ".en") else text + ".0"
    return str(value)


def params_text(params: dict) -> str:
    """The network parameters in effect, as the generated files' headers print them."""
    return ", ".join(f"{k}={number(v)}" for k, v in params.items())


def template_env(subdir: str = ""):
    """The jinja environment of codegen_templates/<subdir>: strict, no HTML escaping (the
    templates write code); user text goes in only through codetext's filters (c_comment,
    py_doc, ...), and every identifier through its backend's identifier rules."""
    import jinja2

    from ..resources import templates_dir
    from .codetext import FILTERS

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / subdir)), autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(FILTERS)
    return env
