"""The `archdsl` command line (typer + rich).

Every command turns user errors (ArchError) into diagnostics on stderr and exit
code 1; nothing here imports torch or onnx at module level.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from .commands import plain_params
from .errors import ArchError

plain_params.install()  # str, int, float and Path values without importing pydantic (see the module)

app = typer.Typer(
    name="archdsl",
    help="A language for CNN architectures written the way papers print them, "
         "compiled to cost tables, PyTorch, ONNX, NumPy and C.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

SET_HELP = "Override a network parameter, e.g. --set alpha=0.5 --set rho=192/224 (simple arithmetic allowed)."


def fail(err: ArchError) -> None:
    typer.echo(err.render(), err=True)
    raise typer.Exit(1)


def user_errors(fn):
    """Report ArchError as a diagnostic (exit 1), never as a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import warnings

        try:
            with warnings.catch_warnings():  # NumPy's "invalid value" lines on NaN data are noise: the
                warnings.simplefilter("ignore", RuntimeWarning)  # output shows the NaN, the weights are checked
                return fn(*args, **kwargs)
        except ArchError as err:
            fail(err)
        except KeyboardInterrupt:  # pragma: no cover
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)

    return wrapper


def parse_assignment(text: str, flag: str) -> tuple[str, Any]:
    """NAME=VALUE where VALUE is a number, simple arithmetic (192/224) or a word."""
    from .exprs import Scope, evaluate
    from .syntax import Var, parse_expr_text
    from .errors import Loc

    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise ArchError(f"{flag} {text!r}: expected NAME=VALUE", None, f"e.g. {flag} alpha=0.5")
    try:
        expr = parse_expr_text("{" + value + "}", Loc(1, 1))
    except ArchError as e:
        raise ArchError(f"{flag} {name}: cannot read the value {value!r}", None,
                        _cause(e, "values are numbers, arithmetic like 192/224, or words")) from None
    if isinstance(expr, Var):
        return name, expr.name  # a word value
    try:
        return name, evaluate(expr, Scope({}))
    except ArchError as e:
        raise ArchError(f"{flag} {name}: cannot evaluate {value!r}", None,
                        _cause(e, "values are numbers, arithmetic like 192/224, or words")) from None


def _cause(err: ArchError, usage: str) -> str:
    """The reason a value was refused (too large, division by zero ...), else how to write one."""
    message = err.diagnostics[0].message
    return usage if message.startswith("malformed expression") else f"{message}; {usage}"


def parse_sets(sets: Optional[List[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in sets or []:
        name, value = parse_assignment(item, "--set")
        out[name] = value
    return out


def load_spec(path: Path):
    from .syntax import parse

    from .inputs import read_spec

    text = read_spec(path)
    return parse(text, str(path))


def load_graph(path: Path, sets: Optional[List[str]]):
    from .elaborate import elaborate

    return elaborate(load_spec(path), parse_sets(sets))


# ---------------------------------------------------------------- check

@app.command()
@user_errors
def check(
    spec: Path = typer.Argument(..., help="The .arch spec file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
):
    """Check a spec and print its inferred shapes (or its diagnostics)."""
    from rich.console import Console
    from rich.table import Table

    graph = load_graph(spec, set_)
    from .analysis.costs import layer_costs

    table = Table(title=f"{graph.name}: input {graph.input_shape}", title_justify="left")
    for col in ("layer", "line", "op", "input", "output"):
        table.add_column(col, justify="right" if col == "line" else "left")
    for row in layer_costs(graph):
        table.add_row(row.name, str(row.line), row.op, str(row.in_shape), str(row.out_shape))
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(f"ok: {len(graph.nodes)} nodes, output {graph.output_shape}")


# ---------------------------------------------------------------- stats

PATCH_PREFIX_HELP = ("Run the schedule's first steps tile by tile up to this step (a step count, or the name of "
                     "a row or tensor, e.g. dw2); default: the prefix with the smallest arena.")
PATCH_GRID_HELP = ("Tiles of the patch prefix's output map, ROWSxCOLS (e.g. 3x3); auto (default) picks the grid "
                   "with the smallest arena, none turns patches off.")
BUDGET_HELP = "Most recomputed mult-adds a patch plan may add, as a fraction of the network's (default 0.10)."
INPUT_OUTSIDE_HELP = ("The network reads its input from the caller's buffer (in flash, or a frame buffer the "
                      "application keeps anyway) instead of a copy in the arena; the arena is then the "
                      "activations alone. The C API becomes <p>_invoke_on(input).")

@app.command()
@user_errors
def stats(
    spec: Path = typer.Argument(..., help="The .arch spec file."),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
    by: Optional[str] = typer.Option(None, "--by", metavar="layer|type",
                                     help="Show only the per-layer table or only the per-type table (Table 2)."),
    sweep: Optional[List[str]] = typer.Option(None, "--sweep", metavar="NAME=V1,V2,...",
                                              help="One row per combination of values (the paper's Tables 6-7)."),
    fmt: str = typer.Option("table", "--format", metavar="table|markdown|csv|json", help="Output format."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png",
                                        help="Draw mult-adds against params on log axes, one line per width through "
                                             "the resolutions, as in MobileNet's Figures 4-5 (needs matplotlib)."),
    patch_prefix: Optional[str] = typer.Option(None, "--patch-prefix", metavar="STEPS|NAME", help=PATCH_PREFIX_HELP),
    patch_grid: Optional[str] = typer.Option(None, "--patch-grid", metavar="RxC|auto|none", help=PATCH_GRID_HELP),
    budget: float = typer.Option(0.10, "--recompute-budget", metavar="FRACTION", help=BUDGET_HELP),
    input_outside: bool = typer.Option(False, "--input-outside-arena", help=INPUT_OUTSIDE_HELP),
    plot_memory: Optional[Path] = typer.Option(None, "--plot-memory", metavar="FILE.png",
                                               help="Draw the live activation bytes per step, layer by layer "
                                                    "against patched (needs matplotlib)."),
    int8: bool = typer.Option(False, "--int8",
                              help="Also the int8 build's figures: flash per layer (int8 weights, int32 "
                                   "biases, multipliers and shifts) and the int8 arena; the activation memory "
                                   "table is then in int8 bytes."),
):
    """Parameters, mult-adds and activation memory, per layer, per layer type and in total."""
    from . import report

    if fmt not in report.FORMATS:
        raise ArchError(f"--format {fmt!r}: choose one of {', '.join(report.FORMATS)}")
    if by not in (None, "layer", "type"):
        raise ArchError(f"--by {by!r}: choose layer or type")
    if sweep:
        import math

        from .elaborate import elaborate
        from .limits import MAX_SWEEP

        spec_ast = load_spec(spec)
        fixed = parse_sets(set_)
        axes = []
        for item in sweep:
            name, _, values = item.partition("=")
            if not values:
                raise ArchError(f"--sweep {item!r}: expected NAME=V1,V2,...", None, "e.g. --sweep alpha=1,0.75,0.5")
            if values.count(",") >= MAX_SWEEP:  # refused before thousands of values are read
                raise ArchError(f"--sweep {name}: more than {MAX_SWEEP:,} values")
            axes.append([parse_assignment(f"{name}={v}", "--sweep") for v in values.split(",")])
        combinations = math.prod(len(axis) for axis in axes)
        if combinations > MAX_SWEEP:
            raise ArchError(f"--sweep: {' x '.join(str(len(a)) for a in axes)} = {combinations:,} combinations, "
                            f"more than the limit of {MAX_SWEEP:,}", None,
                            "each combination elaborates the whole network; sweep fewer values")
        results = report.run_sweep(spec_ast, fixed, axes, elaborate)
        text = report.render_sweep(spec_ast.name, results, fmt)
        if plot:
            report.plot(plot, results, spec_ast.name)
    else:
        graph = load_graph(spec, set_)
        text = report.render_stats(graph, fmt, by)
        if by is None and fmt != "csv" or plot_memory or patch_prefix or patch_grid or input_outside:
            from .analysis.patch import memory_report

            # with --int8, the arena of the int8 build: the same plans at one byte per element
            rep = memory_report(graph, elem_bytes=1 if int8 else 4, prefix=patch_prefix, grid=patch_grid,
                                budget=budget, input_in_arena=not input_outside)
            if fmt == "json":
                import json

                text = json.dumps({**json.loads(text), "memory": report.memory_json(rep)}, indent=2)
            elif text is not None:
                text = text.rstrip("\n") + "\n\n" + report.render_memory(graph, rep, fmt)
            else:
                report.render_memory(graph, rep, fmt)
            if plot_memory:
                report.plot_memory(plot_memory, rep, graph.name)
        if int8:
            extra = report.render_int8(graph, fmt)
            if fmt == "json":
                import json

                text = json.dumps({**json.loads(text), "int8": json.loads(extra)["int8"]}, indent=2)
            elif text is not None:
                text = text.rstrip("\n") + "\n\n" + extra
        if plot:
            from .analysis.costs import totals

            t = totals(graph)
            report.plot(plot, [{"set": dict(parse_sets(set_)), "input": graph.input_shape.as_list(),
                                "macs": t["macs"], "params": t["params"]}], graph.name)
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _register_optional_commands() -> None:
    """Commands that live in their own modules (targets, verify, run, import, quantize)."""
    import importlib

    for module in ("archdsl.commands.compile", "archdsl.commands.verify", "archdsl.commands.run",
                   "archdsl.commands.import_weights", "archdsl.commands.quantize"):
        try:
            importlib.import_module(module).register(app)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


_register_optional_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
