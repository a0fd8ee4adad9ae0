"""The PyTorch target: `<name>.py`, a readable `nn.Module`, and `<name>.pt`, its state_dict.

The module mirrors the IR's names. Every dotted prefix of a node name is a
submodule: a run of single-input layers that feed one another (a conv row with its
BN and activation, a block without a branch) is an `nn.Sequential`, any other
container (a residual, scale or concat body, a block with one inside) is an
`nn.ModuleDict`, and every layer with weights or behaviour is a standard `torch.nn`
module at its IR path. So `model.state_dict()` has exactly the IR parameter keys
(`conv3.conv.weight`, `conv3.bn.running_mean`; plus BatchNorm's
`num_batches_tracked`, which weight loaders ignore). `forward` follows the spec
row by row, each line commented with its spec row; residuals, gates and concats
are written out as `+`, `*` and `torch.cat`.

Tensors are NCHW, except that the output of `fc` and `flatten` stays (N, F), as a
hand-written classifier keeps it; a layer that needs the other rank gets its input
reshaped in place (`torch.flatten(x, 1)` or `x[:, :, None, None]`), and `run`
reports a (N, F) result as (N, F, 1, 1), the IR's 1x1xF.

The generated file imports only torch and collections. Besides the class it has
`build(weights_path=None)`, which loads a state_dict with `weights_only=True`.
Same graph and weights, same bytes in both files.

The package, by concern: lowering.py (the table of lowerings), planner.py (the module tree and
the lines of __init__ / forward), writing.py (the files), runner.py (loading and running them).
This module is the target's interface (archdsl.backends).
"""
from __future__ import annotations

import importlib.util

from .lowering import LOWERINGS, Lowering
from .planner import Plan
from .runner import load_model, load_module, run, run_layers
from .writing import class_name, compile, module_source, state_dict, state_dict_bytes

NAME = "torch"
EXTRA = "torch"


def unavailable() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "the torch target needs PyTorch: pip install 'archdsl[torch]'"
    return None
