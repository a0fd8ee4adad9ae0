"""The op interface and registry.

Each op is declared once, as a subclass of `Op`, with everything that is true of it whatever
the target: how it reads a spec row (`configure`, returning its typed attributes `attrs_type`), its output shape, its parameter shapes, its
mult-adds and cost type, its fusion flags, how the importers recognise it (`import_kind`,
`import_names`, `import_pattern`), its docs line (`doc`, `formula`) and its int8 rule (`int8`). Cost tables,
weight init, validation, the importers' name sets, the C activation enum and every backend's
lowering table derive from these; backends key their tables by op class (see
docs/architecture.md, "Adding an op").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ArchError, Loc, did_you_mean
from ..ir import ParamSpec, TensorShape

REGISTRY: dict[str, "Op"] = {}
ALIASES: dict[str, str] = {}

# Options every row accepts; elaboration handles them, not the op.
ROW_OPTIONS = {"n", "if", "after", "name"}


def register(cls):
    op = cls()
    if not op.import_kind:
        op.import_kind = op.name
    REGISTRY[op.name] = op
    for alias in op.aliases:
        ALIASES[alias.lower()] = op.name
    return cls


def lookup(name: str) -> "Op | None":
    key = name.lower()
    return REGISTRY.get(ALIASES.get(key, key))


def op_names() -> list[str]:
    return sorted(REGISTRY)


def op_class(name: str) -> type:
    """The class of the op registered as `name` (a spec word or an alias)."""
    op = lookup(name)
    if op is None:
        raise KeyError(name)
    return type(op)


@dataclass(frozen=True)
class Attrs:
    """An op's attributes: what its `configure` read from the spec row, typed and immutable.
    Ops without attributes use this empty form; an op family with attributes declares its own
    subclass in the op's module (`ConvAttrs`, `PoolAttrs`, ...) and names it in `Op.attrs_type`.
    Every consumer reads them by attribute (`node.attrs.kernel`)."""


@dataclass(frozen=True)
class Window(Attrs):
    """A window over the map (convolutions, pools): per axis (vertical, horizontal) kernel and
    stride, and the padding (top, left, bottom, right)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]

    def output(self, x: TensorShape, channels: int) -> TensorShape:
        """The map this window makes of `x`, with `channels` channels."""
        (kh, kw), (sh, sw), (t, l, b, r) = self.kernel, self.stride, self.pads
        return TensorShape(window_out(x.h, kh, sh, t, b), window_out(x.w, kw, sw, l, r), channels)

    @property
    def slides(self) -> bool:
        """Does the window slide over the map? (A global pool's one window does not.)"""
        return True


def activations() -> list["Op"]:
    """The fusable activations, in registration order (the order of the C runtime's enum)."""
    return [op for op in REGISTRY.values() if op.is_activation]


@dataclass
class RowArgs:
    """A spec row as an op sees it: values evaluated, locations kept for diagnostics."""

    op_loc: Loc
    in_shapes: tuple[TensorShape, ...]
    stride: int | None = None
    stride_loc: Loc | None = None
    filter: tuple[int, ...] | None = None
    filter_locs: tuple[Loc, ...] = ()
    filter_loc: Loc | None = None
    filter_from_input: tuple[bool, ...] = ()  # per dimension: is it computed from in.*?
    dw: bool = False
    options: dict[str, tuple[Any, Loc]] = field(default_factory=dict)
    flags: dict[str, Loc] = field(default_factory=dict)
    at_defaults: bool = True  # declared channel counts are checked only at the spec's defaults
    scale_width: Callable[[int], int] = lambda c: c

    @property
    def x(self) -> TensorShape:
        return self.in_shapes[0]

    def opt(self, key: str, default: Any) -> Any:
        return self.options[key][0] if key in self.options else default

    def opt_loc(self, key: str) -> Loc:
        return self.options[key][1] if key in self.options else self.op_loc

    def check_declared(self, index: int, actual: int, what: str, hint: str | None = None) -> None:
        """A channel count written in the filter shape is an assertion about the input."""
        if not self.at_defaults or self.filter is None:
            return
        declared = self.filter[index]
        if declared != actual:
            raise ArchError(f"filter shape says {what} {declared}, but the input has {actual}",
                            self.filter_locs[index], hint)


class Op:
    """One layer type. Subclasses set the class attributes and override the methods."""

    name: str = ""  # as written in a spec row ("conv dw")
    short: str = ""  # stem of node names ("dw")
    title: str = ""  # for per-type tables ("Avg Pool")
    aliases: tuple[str, ...] = ()
    doc: str = ""
    arity: int | None = 1  # number of inputs; None = two or more
    takes_stride: bool = False
    filter_form: str | None = None  # what the filter column holds, for messages
    options: dict[str, Any] = {}  # accepted key=value options and their defaults
    flags: tuple[str, ...] = ()
    elementwise: bool = False  # output has the first input's shape, element by element (may run in place)
    alias_input: bool = False  # output is a view of the input (flatten, dropout)
    # Fusion, used by the runtimes that fuse (NumPy, C) and by the memory plan:
    folds_bn: bool = False  # a following BN folds into this op's weights and bias (conv, fc)
    takes_activation: bool = False  # a following activation can run in this op's epilogue
    is_activation: bool = False  # an element-wise activation that can be fused
    formula: str = ""  # activations: the maths in ASCII (the C runtime's enum comment)
    # How the importers (archdsl/importers) recognise the op. `import_kind` is its kind in the
    # structural matcher (importers/structure); ops without weights whose kind is "pass" are
    # contracted away on both sides. `import_names` maps a model format ("tflite", "onnx",
    # "keras") to the names of that format's ops (or Keras activations) that read one to one as
    # this op; formats that need more than a name keep a handler in their reader.
    import_kind: str = ""
    import_names: dict[str, tuple[str, ...]] = {}
    # (outer, inner) kinds: a graph that writes outer(x, inner(x)) means this op (silu is
    # mul(x, sigmoid(x)) in TFLite and ONNX files); the matcher reads it as one node of import_kind.
    import_pattern: tuple[str, str] | None = None
    # The int8 rule: how the op runs on int8 tensors (scales, zero points, the reference
    # arithmetic of TFLite Micro). None: the op has no int8 form yet. See docs/architecture.md.
    int8: Any = None
    attrs_type: type = Attrs  # the class `configure` returns (see Attrs)

    # ---- declared once, used everywhere
    def configure(self, args: RowArgs) -> Attrs:
        self.reject_filter(args)
        self.reject_stride(args)
        return Attrs()

    def out_shape(self, attrs: Attrs, ins: tuple[TensorShape, ...]) -> TensorShape:
        return ins[0]

    def param_shapes(self, attrs: Attrs, ins: tuple[TensorShape, ...]) -> dict[str, ParamSpec]:
        return {}

    def macs(self, attrs: Attrs, ins: tuple[TensorShape, ...], out: TensorShape) -> int:
        """Multiply-accumulates in the papers' convention (conv and fc only)."""
        return 0

    def cost_type(self, attrs: Attrs) -> str:
        return self.title or self.name.title()

    # ---- helpers for configure()
    def check_options(self, args: RowArgs) -> None:
        for key, (_, loc) in args.options.items():
            if key not in self.options and key not in ROW_OPTIONS:
                known = sorted(set(self.options) | ROW_OPTIONS)
                guess = did_you_mean(key, known)
                raise ArchError(f"'{self.name}' has no option '{key}'", loc,
                                f"did you mean '{guess}='?" if guess else f"options: {', '.join(known)}")
        for flag, loc in args.flags.items():
            if flag.lower() not in self.flags:
                guess = did_you_mean(flag, list(self.flags)) if self.flags else None
                raise ArchError(f"unexpected word '{flag}' on a '{self.name}' row", loc,
                                f"did you mean '{guess}'?" if guess else
                                (f"'{self.name}' accepts: {', '.join(self.flags)}" if self.flags else None))

    def reject_filter(self, args: RowArgs) -> None:
        if args.filter is not None:
            raise ArchError(f"'{self.name}' takes no filter shape", args.filter_loc)

    def reject_stride(self, args: RowArgs) -> None:
        if args.stride not in (None, 1):
            raise ArchError(f"'{self.name}' has no stride", args.stride_loc,
                            "only conv, conv dw and pooling rows take / sN")

    def need_filter(self, args: RowArgs, ndims: tuple[int, ...]) -> tuple[int, ...]:
        f = args.filter
        if f is None:
            raise ArchError(f"'{self.name}' needs a filter shape {self.filter_form}", args.op_loc)
        if len(f) not in ndims:
            raise ArchError(f"'{self.name}' filter shape is {self.filter_form}, got "
                            f"{'x'.join(map(str, f))} ({len(f)} numbers)", args.filter_loc)
        for v, loc in zip(f, args.filter_locs):
            if v <= 0:
                raise ArchError(f"filter dimensions must be positive, got {v}", loc)
        return f

    def option_choice(self, args: RowArgs, key: str, choices: tuple) -> Any:
        value = args.opt(key, self.options[key])
        if value not in choices:
            raise ArchError(f"option {key}= must be one of {', '.join(map(str, choices))}; got {value!r}",
                            args.opt_loc(key))
        return value

    def option_bool(self, args: RowArgs, key: str) -> bool:
        value = args.opt(key, self.options[key])
        if isinstance(value, bool):
            return value
        if value in ("yes", "true", 1, "on"):
            return True
        if value in ("no", "false", 0, "off"):
            return False
        raise ArchError(f"option {key}= takes yes or no; got {value!r}", args.opt_loc(key))

    def option_number(self, args: RowArgs, key: str, *, integer: bool = False, low: float | None = None) -> Any:
        value = args.opt(key, self.options[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and float(value) != int(value)):
            raise ArchError(f"option {key}= takes {'a whole number' if integer else 'a number'}; got {value!r}",
                            args.opt_loc(key))
        if low is not None and value < low:
            raise ArchError(f"option {key}= must be at least {low}; got {value}", args.opt_loc(key))
        return int(value) if integer else value


def stride_pair(args: RowArgs, default: tuple[int, int]) -> tuple[int, int]:
    """(vertical, horizontal) stride: `/ sN` is N on both axes; without one, `default` per axis
    (1x1 for convolutions, the window itself for pools, so `avg pool 2x1` steps 2 down and 1 across)."""
    if args.stride is None:
        return default
    if args.stride < 1:
        raise ArchError(f"stride must be at least 1, got {args.stride}", args.stride_loc)
    return (args.stride, args.stride)


def padding_for(mode: Any, kernel: tuple[int, int], stride: tuple[int, int], size: tuple[int, int],
                loc: Loc) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) padding.

    same    -- PyTorch-style: (k-1)//2 before and k//2 after, whatever the stride
    same_tf -- TensorFlow SAME: output ceil(n/s), the odd pixel of padding goes after
    valid   -- none
    N       -- N on every side
    """
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode == "same":
        (kh, kw) = kernel
        return ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)
    if mode == "same_tf":
        pads = []
        for k, s, n in zip(kernel, stride, size):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        (t, b), (l, r) = pads
        return (t, l, b, r)
    if isinstance(mode, int) and not isinstance(mode, bool) and mode >= 0:
        return (mode, mode, mode, mode)
    raise ArchError(f"pad= takes same, same_tf, valid or a number; got {mode!r}", loc)


def window_out(size: int, k: int, s: int, before: int, after: int) -> int:
    return (size + before + after - k) // s + 1
