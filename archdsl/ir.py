"""The IR: a graph of typed layers in execution order.

Each node runs one op on one or more named tensors and produces the tensor that
bears its own name. Node names are dotted paths (`conv3.bn`, `residual2.conv1`):
every prefix is a container, so the PyTorch backend can mirror them as modules
and parameter keys (`conv3.conv.weight`) are the same in every target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorShape:
    """A feature map, printed H x W x C as papers print it; backends use NCHW."""

    h: int
    w: int
    c: int

    def __str__(self) -> str:
        return f"{self.h}x{self.w}x{self.c}"

    @property
    def numel(self) -> int:
        return self.h * self.w * self.c

    @property
    def chw(self) -> tuple[int, int, int]:
        return (self.c, self.h, self.w)

    def as_list(self) -> list[int]:
        return [self.h, self.w, self.c]


@dataclass(frozen=True)
class ParamSpec:
    """A parameter tensor. `role` decides which counting convention includes it:
    weight (conv/fc weights: the papers' count), bias, bn_affine (γ, β), bn_stats (running mean/var)."""

    shape: tuple[int, ...]
    role: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class RowRef:
    """The spec row a node came from: its group name (for per-layer tables) and its source line."""

    name: str
    line: int
    col: int
    text: str


@dataclass
class Node:
    name: str
    op: Any  # archdsl.ops.Op
    attrs: Any  # archdsl.ops.Attrs: the op's typed attributes
    inputs: tuple[str, ...]
    in_shapes: tuple[TensorShape, ...]
    out_shape: TensorShape
    params: dict[str, ParamSpec]
    row: RowRef

    @property
    def output(self) -> str:
        return self.name

    def param_key(self, local: str) -> str:
        return f"{self.name}.{local}"

    @property
    def macs(self) -> int:
        return self.op.macs(self.attrs, self.in_shapes, self.out_shape)


@dataclass
class Graph:
    name: str
    params: dict[str, Any]  # network parameter values in effect
    input_name: str
    input_shape: TensorShape
    nodes: list[Node]
    output: str
    width_rule: str = "floor"
    source_name: str = "<spec>"
    _by_name: dict[str, Node] = field(default_factory=dict, repr=False)
    _analysis: Any = field(default=None, repr=False, compare=False)  # archdsl.analysis.analyze's cache

    def node(self, name: str) -> Node:
        if not self._by_name:
            self._by_name = {n.name: n for n in self.nodes}
        return self._by_name[name]

    def shape_of(self, tensor: str) -> TensorShape:
        return self.input_shape if tensor == self.input_name else self.node(tensor).out_shape

    @property
    def output_shape(self) -> TensorShape:
        return self.shape_of(self.output)

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {self.input_name: []}
        for n in self.nodes:
            users.setdefault(n.name, [])
            for t in n.inputs:
                users.setdefault(t, []).append(n)
        return users

    def parameters(self):
        """(key, ParamSpec) for every parameter, in execution order."""
        for n in self.nodes:
            for local, spec in n.params.items():
                yield n.param_key(local), spec
