"""Writing `<name>.py` (the module's text, from the template) and `<name>.pt` (its state_dict)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...ir import Graph
from ..codetext import py_comment, source_label
from ..common import params_text, template_env
from .planner import Plan

TEMPLATE = "torch/module.py.j2"
COMMENT_COLUMN_MAX = 56  # forward's comments line up at the widest statement, up to this column


# ---------------------------------------------------------------- writing


def class_name(graph: Graph) -> str:
    """mobilenet_v1 -> MobilenetV1."""
    name = "".join(part[:1].upper() + part[1:] for part in graph.name.split("_") if part) or "Network"
    if not name[0].isalpha():
        name = "Net" + name
    if name in ("OrderedDict", "PaddedAvgPool2d", "F", "nn", "torch", "build"):
        name += "Net"
    return name


def _align(lines: list[tuple[str, str]]) -> list[str]:
    width = min(COMMENT_COLUMN_MAX, max((len(code) for code, c in lines if code and c), default=0))
    out = []
    for code, comment in lines:
        if not code:
            out.append(f"# {py_comment(comment)}")
        elif comment:
            out.append(f"{code.ljust(width)}  # {py_comment(comment)}")
        else:
            out.append(code)
    return out


def module_source(graph: Graph, name: str) -> str:
    """The text of `<name>.py` for `graph`."""
    plan = Plan(graph)
    params = params_text(graph.params)
    n_params = sum(spec.numel for _, spec in graph.parameters() if spec.role in ("weight", "bias"))
    macs = sum(n.macs for n in graph.nodes)
    text = template_env().get_template(TEMPLATE).render(
        network=graph.name, params=params, source=source_label(graph.source_name), cls=class_name(graph),
        input=graph.input_shape, output=graph.output_shape, output_rank=plan.rank[graph.output],
        n_params=f"{n_params:,}", macs=f"{macs:,}", width_rule=graph.width_rule,
        helpers=plan.helpers(), init=plan.init_lines(), forward=_align(plan.forward_lines()),
        layers=plan.layer_lines(), functional=bool(plan.helpers()),
    )
    return text


def state_dict(graph: Graph, weights: dict[str, np.ndarray]):
    """The generated module's state_dict holding `weights` (checked against the graph)."""
    import torch
    from collections import OrderedDict

    from ...weights import check_weights

    weights = check_weights(weights, graph, "the weights")
    sd = OrderedDict()
    for key, ir_key in Plan(graph).state_keys():
        if ir_key is None:
            sd[key] = torch.tensor(0, dtype=torch.long)
        else:
            sd[key] = torch.from_numpy(np.array(weights[ir_key], dtype=np.float32, copy=True))
    return sd


def state_dict_bytes(graph: Graph, weights: dict[str, np.ndarray]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state_dict(graph, weights), buf)
    return buf.getvalue()


def compile(graph: Graph, weights: dict[str, np.ndarray], outdir, name: str) -> list[Path]:
    """Write `<outdir>/<name>.py` (the nn.Module) and `<outdir>/<name>.pt` (its state_dict)."""
    from ...fsutil import write_files_atomically
    from ..codetext import py_module

    name = py_module(name)
    files = {f"{name}.py": module_source(graph, name), f"{name}.pt": state_dict_bytes(graph, weights)}
    return write_files_atomically(outdir, files)
