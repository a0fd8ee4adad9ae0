"""Running what the torch target wrote: import the generated module, load its weights, run a batch."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ...errors import ArchError
from ..common import check_batch

# ---------------------------------------------------------------- running


def _paths(outdir, name: str) -> tuple[Path, Path]:
    from ..codetext import py_module

    name = py_module(name)
    py, pt = Path(outdir) / f"{name}.py", Path(outdir) / f"{name}.pt"
    for path in (py, pt):
        if not path.is_file():
            raise ArchError(f"no PyTorch module at {path}", None, "write it first: archdsl compile --target torch")
    return py, pt


def load_module(outdir, name: str):
    """Import the generated `<outdir>/<name>.py` as a Python module (not added to sys.modules)."""
    py, _ = _paths(outdir, name)
    spec = importlib.util.spec_from_file_location(f"archdsl_torch_{name}", py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_model(outdir, name: str):
    """The generated module with its saved weights, in eval mode."""
    _, pt = _paths(outdir, name)
    return load_module(outdir, name).build(str(pt))


def _input(model, x: np.ndarray):
    import torch

    return torch.from_numpy(check_batch(x, tuple(model.input_shape), batch_only=True))


def _as_nchw(t) -> np.ndarray:
    """A (N, F) result as the IR's (N, F, 1, 1)."""
    arr = t.detach().cpu().numpy()
    return arr.reshape(arr.shape + (1, 1)) if arr.ndim == 2 else arr


def run(outdir, name: str, x: np.ndarray) -> np.ndarray:
    """Run the generated module (eval mode) on an NCHW float32 batch; returns (N, C, H, W)."""
    import torch

    model = load_model(outdir, name)
    with torch.inference_mode():
        return _as_nchw(model(_input(model, x)))


def run_layers(outdir, name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """{IR node name: its output (N, C, H, W)} for every layer, from the module's forward_layers."""
    import torch

    model = load_model(outdir, name)
    with torch.inference_mode():
        return {k: _as_nchw(v) for k, v in model.forward_layers(_input(model, x)).items()}
