"""What the commands share about targets: loading one (with the reason it is unusable), the
targets this installation has, the weights a command runs with, and calling a target's compile."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

from ..errors import ArchError


def load_target(name: str):
    """The target module, usable now; an ArchError saying why not otherwise."""
    from .. import backends

    module_name = backends.TARGETS.get(name)
    try:
        target = backends.load(name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise ArchError(f"the {name} target is not part of this installation", None,
                            f"available targets: {', '.join(available_targets())}") from None
        raise ArchError(f"the {name} target needs the Python package '{e.name}', which is not installed", None,
                        f"pip install 'archdsl[{name}]'") from None
    reason = target.unavailable()
    if reason:
        extra = getattr(target, "EXTRA", None)
        raise ArchError(f"the {name} target is unavailable: {reason}", None,
                        f"pip install 'archdsl[{extra}]'" if extra else None)
    return target


def available_targets() -> list[str]:
    """Targets whose module is part of this installation (usable or not)."""
    import importlib.util
    import sys

    from .. import backends

    def present(module: str) -> bool:
        if module in sys.modules:
            return True
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    return [t for t, mod in backends.TARGETS.items() if present(mod)]


def get_weights(graph, weights: Optional[Path], seed: int, int8: bool = True):
    """The weights of --weights (float, or an int8 weight file when `int8`), else a seeded init."""
    from ..quant.weights_file import is_int8_weights, load_int8
    from ..weights import init_weights, load_weights

    if weights is not None and is_int8_weights(weights):
        if not int8:
            raise ArchError(f"--weights {weights} holds int8 weights; this command takes float weights")
        return load_int8(weights, graph)
    return load_weights(weights, graph) if weights is not None else init_weights(graph, seed)


def int8_targets() -> list[str]:
    """The targets with an int8 build (INT8 = True). Only the light targets are imported to ask:
    a hint must not import torch or onnx."""
    from .. import backends

    return [t for t in ("numpy", "c") if t in available_targets() and getattr(backends.load(t), "INT8", False)]


def compile_target(target, graph, weights, outdir: Path, name: str, prefix: Optional[str] = None,
                   memory=None) -> list[Path]:
    """Call target.compile, passing `prefix` to targets that take one (the C target's symbol prefix)
    and `memory` (an arena plan other than the plain one) to the C target."""
    from ..quant.weights_file import is_int8_dict

    if is_int8_dict(weights) and not getattr(target, "INT8", False):
        raise ArchError(f"the {target.NAME} target has no int8 build: the weights are int8", None,
                        f"int8 weights compile with --target {' or '.join(int8_targets())}")
    kwargs = {}
    if prefix is not None:
        if "prefix" not in inspect.signature(target.compile).parameters:
            raise ArchError(f"--prefix does not apply to the {target.NAME} target", None,
                            "--prefix names the C runtime's symbols; use --name for the file names")
        kwargs["prefix"] = prefix
    if memory is not None:
        kwargs["memory"] = memory
    return list(target.compile(graph, weights, outdir, name, **kwargs))
