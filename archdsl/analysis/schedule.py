"""The fused execution schedule shared by the runtimes that fuse (NumPy, C) and the memory plan.

A step is one kernel call: a main node plus the nodes folded into it — a BN that
folds into the conv/fc weights before it, and an activation that runs in the
kernel's epilogue. A node is fused only when it is the sole consumer of the
tensor before it, so no intermediate result that someone else reads disappears.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph, Node


@dataclass
class Step:
    main: Node
    bn: Node | None = None  # folded into main's weights
    activation: Node | None = None  # run in main's epilogue
    fused: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.main, *self.fused]

    @property
    def output(self) -> str:
        return self.nodes[-1].name

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.main.inputs

    @property
    def out_shape(self):
        return self.nodes[-1].out_shape


def schedule(graph: Graph) -> list[Step]:
    users = graph.consumers()
    nodes = graph.nodes
    steps: list[Step] = []
    i = 0
    while i < len(nodes):
        step = Step(nodes[i])
        i += 1

        def follower():
            if i < len(nodes):
                nxt = nodes[i]
                if nxt.inputs == (step.output,) and len(users[step.output]) == 1 and step.output != graph.output:
                    return nxt
            return None

        nxt = follower()
        if nxt is not None and nxt.op.name == "bn" and step.main.op.folds_bn:
            step.bn = nxt
            step.fused.append(nxt)
            i += 1
            nxt = follower()
        if nxt is not None and nxt.op.is_activation and step.main.op.takes_activation:
            step.activation = nxt
            step.fused.append(nxt)
            i += 1
        steps.append(step)
    return steps
