"""Cost tables: per layer, per layer type (the paper's Table 2), and totals.

Conventions (printed by `stats`):
  mult-adds -- multiply-accumulates of conv and fc layers only; BN, activations,
               pooling and bias adds are excluded, as in the MobileNet paper.
  params    -- conv and fc weights only (the paper's count). Also reported:
               with biases; with BN γ/β (trainable); with BN running statistics
               (Keras' "Total params"); and BN-folded (what an inference runtime stores).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph
from .memory import MemoryPlan
from .schedule import Step

CONVENTION = ("mult-adds: conv and fc multiply-accumulates (BN, activations, pooling and bias adds "
              "excluded); params: conv and fc weights (the paper's convention)")


@dataclass
class LayerCost:
    name: str
    line: int
    op: str
    in_shape: object
    out_shape: object
    params: int
    macs: int
    activation_bytes: int
    cost_type: str


def layer_costs(graph: Graph, elem_bytes: int = 4) -> list[LayerCost]:
    """One row per spec row (a conv with its BN and ReLU is one row)."""
    rows: list[LayerCost] = []
    index: dict[str, LayerCost] = {}
    for n in graph.nodes:
        weights = sum(p.numel for p in n.params.values() if p.role == "weight")
        row = index.get(n.row.name)
        if row is None:
            row = LayerCost(n.row.name, n.row.line, n.op.name, n.in_shapes[0], n.out_shape, 0, 0, 0,
                            n.op.cost_type(n.attrs))
            rows.append(row)
            index[n.row.name] = row
        elif n.op.name not in ("add", "mul", "concat") or row.op in ("add", "mul", "concat"):
            row.op += f"+{n.op.name}"
        row.out_shape = n.out_shape
        row.params += weights
        row.macs += n.macs
        row.activation_bytes = n.out_shape.numel * elem_bytes
        if n.macs or weights:
            row.cost_type = n.op.cost_type(n.attrs)
    return rows


def totals(graph: Graph) -> dict[str, int]:
    """The network's totals (from its analysis, computed once)."""
    from . import analyze

    return dict(analyze(graph).totals)


def compute_totals(graph: Graph, steps: list[Step], plan: MemoryPlan) -> dict[str, int]:
    roles: dict[str, int] = {}
    for _, p in graph.parameters():
        roles[p.role] = roles.get(p.role, 0) + p.numel
    weights, bias = roles.get("weight", 0), roles.get("bias", 0)
    affine, stats = roles.get("bn_affine", 0), roles.get("bn_stats", 0)
    folded = weights
    for st in steps:
        main = st.main
        if st.bn is not None or "bias" in main.params:
            folded += main.out_shape.c  # one bias vector (BN folded into it)
        elif main.op.name == "bn":
            folded += 2 * main.out_shape.c  # an unfoldable BN keeps a scale and a shift
    return {
        "macs": sum(n.macs for n in graph.nodes),
        "params": weights,
        "params_with_bias": weights + bias,
        "params_with_bn": weights + bias + affine,
        "params_keras": weights + bias + affine + stats,
        "params_folded": folded,
        "peak_activation_bytes": plan.arena_bytes,
        "peak_live_bytes": plan.peak_live_bytes,
    }


def by_type(graph: Graph) -> list[dict]:
    """Mult-adds and params per layer type, largest first (the paper's Table 2)."""
    acc: dict[str, list[int]] = {}
    for n in graph.nodes:
        weights = sum(p.numel for p in n.params.values() if p.role == "weight")
        if not (n.macs or weights):
            continue
        entry = acc.setdefault(n.op.cost_type(n.attrs), [0, 0])
        entry[0] += n.macs
        entry[1] += weights
    total_macs = sum(v[0] for v in acc.values()) or 1
    total_params = sum(v[1] for v in acc.values()) or 1
    out = [{"type": t, "macs": m, "macs_pct": 100 * m / total_macs, "params": p,
            "params_pct": 100 * p / total_params} for t, (m, p) in acc.items()]
    return sorted(out, key=lambda r: -r["macs"])
