"""Analyses over the IR: the fused execution schedule, the memory plan and cost tables.

`analyze(graph)` computes them once per graph (schedule, memory plan, totals) and keeps the
result on the graph; `stats`, every backend and the MCU report take it from there, so one
`compile --target c --mcu` schedules and plans once. The BN-folded weights depend on the weights
too: `Analysis.folded(weights)` folds once per weights dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph
from .memory import MemoryPlan, plan_memory
from .schedule import Step, schedule


@dataclass
class Analysis:
    graph: Graph
    steps: list[Step]
    plan: MemoryPlan
    totals: dict[str, int]
    _folded: list = field(default_factory=list, repr=False)  # [(weights dict, folded)]

    @property
    def macs(self) -> int:
        return self.totals["macs"]

    def folded(self, weights: dict) -> dict:
        """{step.main.name: (weight, bias)} with BN folded (archdsl.weights.fold_bn), once per weights."""
        for w, f in self._folded:
            if w is weights:
                return f
        from ..weights import fold_bn

        f = fold_bn(self.graph, self.steps, weights)
        self._folded[:] = [(weights, f)]  # keep the last only: weights dicts are large
        return f


def analyze(graph: Graph) -> Analysis:
    """The graph's analysis, computed on first use."""
    if graph._analysis is None:
        from .costs import compute_totals

        steps = schedule(graph)
        plan = plan_memory(graph, steps)
        graph._analysis = Analysis(graph, steps, plan, compute_totals(graph, steps, plan))
    return graph._analysis
