"""`archdsl verify`: build every target on the same weights and input, compare with the reference.

The reference is archdsl.backends.numpy_target.reference_forward (unfused, float64).
Tolerance, per compared tensor `ref` (documented and justified in docs/targets.md):

    |out - ref| <= atol + rtol * |ref|   elementwise,   atol = 1e-4 * scale + 1e-5,   rtol = 1e-3

where scale = max|ref| over the tensor and the tensors it is computed from (a node's
inputs): a clipping activation (relu6, hsigmoid) or a softmax bounds its output, but not
the rounding error it inherits from a larger input.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ArchError

ATOL_SCALE = 1e-4  # atol = ATOL_SCALE * scale + ATOL_FLOOR
ATOL_FLOOR = 1e-5
RTOL = 1e-3
DEFAULT_TARGETS = ("numpy", "torch", "onnx", "c")


@dataclass
class Comparison:
    max_abs: float
    max_rel: float  # max |out - ref| / max(|ref|, atol)
    atol: float
    ok: bool
    where: tuple | None = None  # index of the largest excess over the tolerance


def compare(out, ref, scale: float | None = None) -> Comparison:
    """Compare a target's tensor with the reference's under the scale-aware tolerance.
    `scale` defaults to max|ref|; layer_scale() gives the one verify uses for a node.
    Shapes must hold the same number of elements per image (an (N, C) output is
    compared with an (N, C, 1, 1) reference)."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if out.size != ref.size:
        raise ValueError(f"shape {out.shape} does not match the reference's {ref.shape}")
    out = out.reshape(ref.shape)
    if scale is None:
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    atol = ATOL_SCALE * scale + ATOL_FLOOR
    diff = np.abs(out - ref)
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN is never within tolerance
    excess = diff - (atol + RTOL * np.abs(ref))
    ok = bool(np.all(excess <= 0))
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref), atol)).max()) if diff.size else 0.0
    where = None if ok else tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), ref.shape))
    return Comparison(max_abs, max_rel, atol, ok, where)


@dataclass
class TargetResult:
    target: str
    status: str  # ok | FAIL | skipped | error
    detail: str = ""
    cmp: Comparison | None = None
    layers: str = "-"  # how many layers run_layers() exposed and were compared
    notes: list[str] = field(default_factory=list)
    logits: Comparison | None = None  # the pre-softmax logits, when the output is a softmax


def logits_of(graph) -> str | None:
    """The tensor a final softmax reads (through flatten/dropout views), or None when the output
    is not a softmax. A softmax squashes large logits to one-hot vectors that agree whatever the
    logits were, so verify compares the logits themselves too."""
    t = graph.output
    while t != graph.input_name:
        node = graph.node(t)
        if node.op.name == "softmax":
            return node.inputs[0]
        if not node.op.alias_input:
            return None
        t = node.inputs[0]
    return None


def truncated(graph, tensor: str):
    """The graph up to the node that produces `tensor`, with that tensor as its output."""
    from dataclasses import replace

    k = next(i for i, n in enumerate(graph.nodes) if n.name == tensor)
    return replace(graph, nodes=graph.nodes[:k + 1], output=tensor, _by_name={})


def layer_scale(graph, ref_layers: dict, name: str) -> float:
    """max|ref| over tensor `name` and the node's inputs (the network input under graph.input_name).
    `ref_layers` holds reference outputs by tensor name; absent tensors are left out."""
    import numpy as np

    tensors = [name] + (list(graph.node(name).inputs) if name != graph.input_name else [])
    return max((float(np.max(np.abs(ref_layers[t]))) for t in tensors if t in ref_layers and np.size(ref_layers[t])),
               default=0.0)


def first_divergence(graph, layers: dict, ref_layers: dict) -> tuple[str, Comparison] | None:
    """The first node, in execution order, whose output the target exposes and which is out of tolerance."""
    for node in graph.nodes:
        if node.name in layers and node.name in ref_layers:
            c = compare(layers[node.name], ref_layers[node.name], layer_scale(graph, ref_layers, node.name))
            if not c.ok:
                return node.name, c
    return None


def verify_target(name: str, graph, weights, x, ref, ref_layers, workdir: Path) -> TargetResult:
    """Build and run one target; compare its output, and every layer it exposes through
    run_layers(), with the reference. The first layer out of tolerance is named."""
    from .targets import load_target

    try:
        target = load_target(name)
    except ArchError as e:
        return TargetResult(name, "skipped", e.diagnostics[0].message)
    outdir = workdir / name
    try:
        target.compile(graph, weights, outdir, graph.name)
        out = target.run(outdir, graph.name, x)
        cmp = compare(out, ref, layer_scale(graph, ref_layers, graph.output))
    except ArchError as e:  # e.g. the compiler's message on generated code, which is a bug of ours
        d = e.diagnostics[0]
        return TargetResult(name, "error", d.message, notes=d.hint.splitlines() if d.hint else [])
    except Exception as e:  # a target that crashes is a failed verification, reported, not a traceback
        return TargetResult(name, "error", f"{type(e).__name__}: {e}".splitlines()[0])
    result = TargetResult(name, "ok" if cmp.ok else "FAIL", cmp=cmp)
    if not cmp.ok:
        result.detail = f"output index {cmp.where}"
    run_layers = getattr(target, "run_layers", None)
    logits = logits_of(graph)
    if logits is not None and run_layers is None:  # build the network up to its logits
        try:
            part = truncated(graph, logits)
            target.compile(part, weights, workdir / f"{name}-logits", graph.name)
            _check_logits(result, graph, target.run(workdir / f"{name}-logits", graph.name, x), ref_layers, logits)
        except Exception as e:
            result.status, result.detail = "error", f"logits: {type(e).__name__}: {e}".splitlines()[0]
            return result
    if run_layers is None:
        result.layers = "no run_layers()"
        if not cmp.ok:
            result.notes.append(f"the {name} target does not expose run_layers(), so the first diverging "
                                "layer cannot be named")
        return result
    try:
        layers = run_layers(outdir, graph.name, x)
        found = first_divergence(graph, layers, ref_layers)
    except Exception as e:
        result.status, result.detail = "error", f"run_layers(): {type(e).__name__}: {e}".splitlines()[0]
        return result
    result.layers = f"{sum(1 for n in graph.nodes if n.name in layers)}/{len(graph.nodes)}"
    if logits is not None:
        if logits in layers:
            _check_logits(result, graph, layers[logits], ref_layers, logits)
        else:
            result.notes.append(f"run_layers() does not expose the logits ({logits}); they were not compared")
    if found is not None:
        layer, c = found
        node = graph.node(layer)
        line = " ".join(node.row.text.split("#")[0].split())
        result.status = "FAIL"
        result.detail = f"layer {layer}"
        result.notes.append(f"first diverging layer: {layer} ({node.op.name}, line {node.row.line}: {line}): "
                            f"max abs diff {c.max_abs:.3g}, tolerance {c.atol:.3g} + {RTOL:g}*|ref| "
                            f"(largest excess at index {c.where})")
    elif not cmp.ok:
        result.notes.append("every layer the target exposes is within tolerance; the divergence comes after "
                            "the last exposed layer")
    return result


def _check_logits(result: TargetResult, graph, out, ref_layers: dict, logits: str) -> None:
    result.logits = c = compare(out, ref_layers[logits], layer_scale(graph, ref_layers, logits))
    if not c.ok:
        if result.status == "ok":
            result.status, result.detail = "FAIL", "logits"
        result.notes.append(f"the logits ({logits}, the softmax's input) are out of tolerance: max abs diff "
                            f"{c.max_abs:.3g}, tolerance {c.atol:.3g} + {RTOL:g}*|ref| (largest excess at index "
                            f"{c.where})")


def run_verify(graph, targets: list[str], seed: int, batch: int) -> list[TargetResult]:
    from ..backends.numpy_target import reference_forward
    from ..weights import init_weights
    import numpy as np

    weights = init_weights(graph, seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *graph.input_shape.chw)).astype(np.float32)
    ref, ref_layers = reference_forward(graph, weights, x, keep=True)
    ref_layers[graph.input_name] = x
    with tempfile.TemporaryDirectory(prefix="archdsl-verify-") as tmp:
        return [verify_target(t, graph, weights, x, ref, ref_layers, Path(tmp)) for t in targets]


def parse_targets(text: str) -> list[str]:
    from .. import backends
    from ..errors import did_you_mean

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ArchError("--targets is empty", None, f"e.g. --targets {','.join(DEFAULT_TARGETS)}")
    for t in names:
        if t not in backends.TARGETS:
            guess = did_you_mean(t, list(backends.TARGETS))
            raise ArchError(f"unknown target '{t}'", None,
                            f"did you mean '{guess}'?" if guess else f"targets: {', '.join(backends.TARGETS)}")
    return list(dict.fromkeys(names))


def register(app: typer.Typer) -> None:
    from ..cli import SET_HELP, load_graph, user_errors

    @app.command("verify")
    @user_errors
    def verify_cmd(
        spec: Path = typer.Argument(..., help="The .arch spec file."),
        set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
        targets: str = typer.Option(",".join(DEFAULT_TARGETS), "--targets", metavar="T1,T2,...",
                                    help="Targets to build and compare with the NumPy reference."),
        seed: int = typer.Option(0, "--seed", help="Seed of the weights and of the random input."),
        batch: int = typer.Option(2, "--batch", min=1, help="Images in the random input batch."),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="INT8.npz",
                                               help="An int8 weight file (from import or quantize): verify in "
                                                    "int8, bit for bit, against the NumPy int8 reference."),
        model: Optional[Path] = typer.Option(None, "--model", metavar="MODEL.tflite",
                                             help="int8 mode: also run this .tflite in the oracle and compare "
                                                  "every tensor."),
        oracle: str = typer.Option("tflm", "--oracle", metavar="tflm|litert",
                                   help="int8 mode: TensorFlow Lite Micro (FC in fixed point, the default) or "
                                        "LiteRT's BUILTIN_REF kernels (FC in double)."),
    ):
        """Build each target on the same seeded weights and input and compare it with the reference.

        The reference runs the graph node by node, unfused, in float64. A target passes when every
        output element is within atol + rtol*|ref| (atol = 1e-4*scale + 1e-5, rtol = 1e-3, scale =
        max|ref| over the tensor and the node's inputs); so is every layer a target exposes, and
        so are the logits before a final softmax (which would hide their differences).
        On a failure the first diverging layer is named. Exit code 1 when any target fails;
        targets whose extra is not installed are skipped with the reason.

        With --weights INT8.npz the comparison is in int8 and exact: every value of every step
        output must equal the NumPy int8 reference's (TensorFlow Lite Micro's arithmetic, which the
        targets implement); the first diverging tensor is named with its difference in LSB.
        --model runs the .tflite in the --oracle (pinned versions: docs/int8.md) and compares it
        with the reference in that oracle's FC rounding.
        """
        if weights is not None or model is not None:
            return _verify_int8_cmd(spec, set_, targets, seed, batch, weights, model, oracle)
        from rich.console import Console
        from rich.table import Table

        names = parse_targets(targets)
        graph = load_graph(spec, set_)
        results = run_verify(graph, names, seed, batch)

        console = Console(width=max(100, Console().width), highlight=False)
        table = Table(title=f"{graph.name}: {len(graph.nodes)} nodes, input {batch}x{graph.input_shape.c}x"
                            f"{graph.input_shape.h}x{graph.input_shape.w} (NCHW), seed {seed}",
                      title_justify="left")
        logits = logits_of(graph)
        columns = ["target", "max abs diff", "max rel diff", "atol"]
        if logits is not None:
            columns += ["logits max abs diff", "logits atol"]
        for col in columns + ["layers checked", "status"]:
            table.add_column(col, justify="left" if col in ("target", "status") else "right")
        for r in results:
            status = f"{r.status}: {r.detail}" if r.detail and r.status == "FAIL" else r.status
            c, lg = r.cmp, r.logits
            cells = [r.target] + (["-"] * 3 if c is None else [f"{c.max_abs:.3g}", f"{c.max_rel:.3g}", f"{c.atol:.3g}"])
            if logits is not None:
                cells += ["-"] * 2 if lg is None else [f"{lg.max_abs:.3g}", f"{lg.atol:.3g}"]
            table.add_row(*cells, r.layers, status)
        console.print(table)
        console.print(f"tolerance per element: atol + {RTOL:g}*|ref|"
                      + (f"; logits: {logits}, the softmax's input" if logits is not None else ""),
                      soft_wrap=True, markup=False)
        report_outcome(console, results, "out of tolerance", "within tolerance")


def _verify_int8_cmd(spec, set_, targets, seed, batch, weights, model, oracle) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..cli import load_graph
    from ..quant.oracles import ORACLES
    from ..quant.verify import verify_int8
    from ..quant.weights_file import is_int8_weights, load_int8

    if oracle not in ORACLES:
        raise ArchError(f"--oracle {oracle}: the int8 oracles are {', '.join(ORACLES)}")
    if weights is None:
        raise ArchError("--model needs --weights INT8.npz (e.g. from `archdsl import SPEC MODEL -o INT8.npz`)")
    if not is_int8_weights(weights):
        raise ArchError(f"--weights {weights} is not an int8 weight file", None,
                        "float weights are verified without --weights (seeded init); int8 files come from "
                        "`archdsl import` of an int8 .tflite or `archdsl quantize`")
    names = parse_targets(targets)
    graph = load_graph(spec, set_)
    results = verify_int8(graph, load_int8(weights, graph), [t for t in names], seed, batch, model, oracle)
    console = Console(width=max(100, Console().width), highlight=False)
    table = Table(title=f"{graph.name} int8: input {batch}x{graph.input_shape.c}x{graph.input_shape.h}x"
                        f"{graph.input_shape.w} int8 (NCHW), seed {seed}, reference: NumPy int8 (FC rounded as "
                        f"TensorFlow Lite Micro; for the oracle row, as {ORACLES[oracle].title})",
                  title_justify="left")
    for col in ("target", "equal values", "max diff (LSB)", "tensors checked", "status"):
        table.add_column(col, justify="left" if col in ("target", "status") else "right")
    for r in results:
        status = f"{r.status}: {r.detail}" if r.detail and r.status == "FAIL" else r.status
        table.add_row(r.target, f"{r.equal:,}/{r.total:,}" if r.total else "-", str(r.max_lsb) if r.total else "-",
                      r.tensors, status)
    console.print(table)
    report_outcome(console, results, "not bit-exact", "bit-exact")


def report_outcome(console, results, failed_words: str, ok_words: str) -> None:
    """Each target's notes, then exit 1 when any failed, else the one-line summary."""
    for r in results:
        if r.status in ("skipped", "error"):
            console.print(f"{r.target}: {r.status}: {r.detail}", soft_wrap=True, markup=False)
        for note in r.notes:
            console.print(f"{r.target}: {note}", soft_wrap=True, markup=False)
    failed = [r.target for r in results if r.status in ("FAIL", "error")]
    if failed:
        typer.echo(f"verify: {', '.join(failed)} {failed_words} or failed", err=True)
        raise typer.Exit(1)
    checked = [r.target for r in results if r.status == "ok"]
    console.print(f"ok: {', '.join(checked) if checked else 'no target'} {ok_words}")
