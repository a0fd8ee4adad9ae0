"""Targets. Each target is a module that lowers the IR through a table of small
per-op functions (`LOWERINGS`, keyed by op name) and exposes:

    NAME: str
    EXTRA: str | None                    pip extra it needs ("torch", "onnx") or None
    def unavailable() -> str | None      None when usable, else why not (missing extra, no compiler)
    def compile(graph, weights, outdir, name) -> list[Path]
        writes the target's files for `graph` with `weights` (dict: IR param key -> float32
        ndarray, see archdsl.weights) into `outdir`, all or nothing (archdsl.fsutil)
    def run(outdir, name, x) -> np.ndarray
        runs what `compile` wrote on an NCHW float32 batch and returns the output

Modules are imported lazily, so `stats` and `compile --target c` never import torch or onnx.
"""
from __future__ import annotations

import importlib

TARGETS = {
    "numpy": "archdsl.backends.numpy_target",
    "torch": "archdsl.backends.torch_target",
    "onnx": "archdsl.backends.onnx_target",
    "c": "archdsl.backends.c_target",
}


def load(name: str):
    from ..errors import ArchError, did_you_mean

    if name not in TARGETS:
        guess = did_you_mean(name, list(TARGETS))
        raise ArchError(f"unknown target '{name}'", None,
                        f"did you mean '{guess}'?" if guess else f"targets: {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[name])
