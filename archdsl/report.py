"""Rendering of `stats` results: rich tables, markdown, CSV, JSON, sweeps and plots."""
from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any, Callable

from .analysis.costs import CONVENTION, by_type, layer_costs, totals
from .errors import ArchError
from .ir import Graph

FORMATS = ("table", "markdown", "csv", "json")


def label_of(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in values.items())


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _int(n: int) -> str:
    return f"{n:,}"


def _mib(n: int) -> str:
    return f"{n:,} B ({n / 2**20:.2f} MiB)"


def stats_json(graph: Graph) -> dict:
    t = totals(graph)
    return {
        "network": graph.name,
        "params": graph.params,
        "convention": CONVENTION,
        "width_rule": graph.width_rule,
        "input": graph.input_shape.as_list(),
        "totals": {k: t[k] for k in ("macs", "params", "params_with_bias", "params_with_bn", "params_keras",
                                     "params_folded", "peak_activation_bytes")},
        "by_type": [{**r, "macs_pct": round(r["macs_pct"], 4), "params_pct": round(r["params_pct"], 4)}
                    for r in by_type(graph)],
        "layers": [{"name": r.name, "line": r.line, "op": r.op, "in": r.in_shape.as_list(),
                    "out": r.out_shape.as_list(), "macs": r.macs, "params": r.params,
                    "activation_bytes": r.activation_bytes} for r in layer_costs(graph)],
    }


def _layer_rows(graph: Graph) -> tuple[list[str], list[list[str]]]:
    total = sum(n.macs for n in graph.nodes) or 1
    head = ["layer", "line", "op", "input", "output", "params", "mult-adds", "share", "out bytes"]
    rows = [[r.name, str(r.line), r.op, str(r.in_shape), str(r.out_shape), _int(r.params), _int(r.macs),
             f"{100 * r.macs / total:.2f}%", _int(r.activation_bytes)] for r in layer_costs(graph)]
    return head, rows


def _type_rows(graph: Graph) -> tuple[list[str], list[list[str]]]:
    head = ["type", "mult-adds", "mult-adds %", "params", "params %"]
    rows = [[r["type"], _int(r["macs"]), f"{r['macs_pct']:.2f}%", _int(r["params"]), f"{r['params_pct']:.2f}%"]
            for r in by_type(graph)]
    return head, rows


def _total_rows(graph: Graph) -> list[list[str]]:
    t = totals(graph)
    return [
        ["mult-adds", _int(t["macs"])],
        ["params (conv + fc weights)", _int(t["params"])],
        ["params with biases", _int(t["params_with_bias"])],
        ["params with BN γ/β (trainable)", _int(t["params_with_bn"])],
        ["params with BN statistics (Keras total)", _int(t["params_keras"])],
        ["params after BN folding (inference)", _int(t["params_folded"])],
        ["peak activation memory (fp32 arena)", _mib(t["peak_activation_bytes"])],
    ]


def render_stats(graph: Graph, fmt: str, by: str | None) -> str | None:
    if fmt == "json":
        return json.dumps(stats_json(graph), indent=2)
    show_layers, show_types = by in (None, "layer"), by in (None, "type")
    params = label_of(graph.params)
    if fmt == "csv":
        head, rows = _layer_rows(graph) if by != "type" else _type_rows(graph)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        writer.writerows([[c.replace(",", "") if c[:1].isdigit() else c for c in r] for r in rows])
        return buf.getvalue()
    if fmt == "markdown":
        out = [f"## {graph.name} ({params})", "",
               f"Input {graph.input_shape}; width rule: {graph.width_rule}. Convention: {CONVENTION}.", ""]
        if show_layers:
            out += _markdown(*_layer_rows(graph)) + [""]
        if show_types:
            out += _markdown(*_type_rows(graph)) + [""]
        out += _markdown(["total", "value"], _total_rows(graph))
        return "\n".join(out)
    _rich_stats(graph, show_layers, show_types)
    return None


def _markdown(head: list[str], rows: list[list[str]]) -> list[str]:
    right = [i for i, h in enumerate(head) if h not in ("layer", "op", "type", "input", "output", "total")]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _console():
    from rich.console import Console

    probe = Console()
    return Console(width=max(120, probe.width))


def _rich_table(title: str, head: list[str], rows: list[list[str]]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for h in head:
        table.add_column(h, justify="left" if h in ("layer", "op", "type", "input", "output", "total") else "right")
    for r in rows:
        table.add_row(*r)
    return table


def _rich_stats(graph: Graph, show_layers: bool, show_types: bool) -> None:
    console = _console()
    console.print(f"[bold]{graph.name}[/bold] ({label_of(graph.params)}), input {graph.input_shape}, "
                  f"width rule: {graph.width_rule}")
    console.print(f"[dim]Convention: {CONVENTION}.[/dim]")
    if show_layers:
        console.print(_rich_table("Per layer", *_layer_rows(graph)))
    if show_types:
        console.print(_rich_table("Per layer type", *_type_rows(graph)))
    console.print(_rich_table("Totals", ["total", "value"], _total_rows(graph)))


# ---------------------------------------------------------------- sweeps

def run_sweep(spec, fixed: dict, axes: list[list[tuple[str, Any]]], elaborate: Callable) -> list[dict]:
    combos = list(itertools.product(*axes))
    results = []
    progress = None
    import sys

    if len(combos) > 8 and sys.stderr.isatty():
        from rich.progress import Progress

        progress = Progress(transient=True)
    elaborate(spec, fixed)  # checks the spec (at its defaults too) once, before the loop

    def one(combo):
        sets = dict(fixed)
        sets.update(dict(combo))
        graph = elaborate(spec, sets, check_defaults=False)
        t = totals(graph)
        return {"set": dict(combo), "label": label_of(dict(combo)), "input": graph.input_shape.as_list(),
                "macs": t["macs"], "params": t["params"]}

    if progress is None:
        return [one(c) for c in combos]
    with progress:
        task = progress.add_task("sweeping", total=len(combos))
        for c in combos:
            results.append(one(c))
            progress.advance(task)
    return results


def render_sweep(name: str, results: list[dict], fmt: str) -> str | None:
    if fmt == "json":
        return json.dumps({"network": name, "sweep": [{k: r[k] for k in ("set", "input", "macs", "params")}
                                                      for r in results]}, indent=2)
    keys = list(results[0]["set"]) if results else []
    head = keys + ["input", "mult-adds", "params", "M mult-adds", "M params"]
    rows = [[_fmt_value(r["set"][k]) for k in keys] + ["x".join(map(str, r["input"])), _int(r["macs"]),
                                                        _int(r["params"]), f"{r['macs'] / 1e6:.1f}",
                                                        f"{r['params'] / 1e6:.2f}"] for r in results]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(head)
        writer.writerows([[c.replace(",", "") for c in r] for r in rows])
        return buf.getvalue()
    if fmt == "markdown":
        return "\n".join([f"## {name} sweep", ""] + _markdown(head, rows))
    _console().print(_rich_table(f"{name}: sweep", head, rows))
    return None


_GREEK = {"alpha": "α", "rho": "ρ"}


def plot_series(results: list[dict]) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """Sweep results as the paper's Figures 4-5 group them: one series per value of the
    parameters that do not change the input size (α), its points joined across the ones that
    do (ρ), ordered by resolution and labelled in pixels ("192", not ρ = 0.857143).
    Returns [(series label, [(point label, mult-adds, params), ...]), ...]."""
    keys = list(results[0]["set"]) if results else []

    def others(r, k):
        return tuple(_fmt_value(r["set"][j]) for j in keys if j != k)

    resolution_keys = set()
    for k in keys:  # a key is a resolution key when changing it alone changes the input size
        seen: dict = {}
        for r in results:
            if seen.setdefault(others(r, k), r["input"][:2]) != r["input"][:2]:
                resolution_keys.add(k)
    series: dict[str, list] = {}
    for r in results:
        label = ", ".join(f"{_GREEK.get(k, k)} = {_fmt_value(r['set'][k])}" for k in keys if k not in resolution_keys)
        h, w = r["input"][:2]
        point = (f"{h}" if h == w else f"{h}x{w}") if resolution_keys else ""
        series.setdefault(label, []).append((h * w, point, r["macs"], r["params"]))
    return [(label, [p[1:] for p in sorted(points)]) for label, points in series.items()]


def _plain_log_axis(axis) -> None:
    """Log axis ticks at 1-2-3-5 steps, labelled as plain numbers (0.5, 2, 100; not 3x10^0)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def figure(results: list[dict], title: str):
    """The sweep figure: million mult-adds (x) against million parameters (y), log axes, one
    line per α through its resolutions, each point labelled with its input size in pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=100)
    groups = plot_series(results)
    for label, points in groups:
        xs = [p[1] / 1e6 for p in points]
        ys = [p[2] / 1e6 for p in points]
        ax.plot(xs, ys, marker="o", label=label or None)
        for (text, _, _), x, y in zip(points, xs, ys):
            if text:
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    for axis, scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        scale("log")
        _plain_log_axis(axis)
    ax.margins(x=0.08, y=0.15)
    ax.set_xlabel("Million mult-adds")
    ax.set_ylabel("Million parameters")
    has_px = any(p[0] for _, pts in groups for p in pts)
    ax.set_title(title + (" (points labelled with the input size in pixels)" if has_px else ""), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if any(label for label, _ in groups):
        ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot(path: Path, results: list[dict], title: str) -> None:
    """Write figure() as a PNG (no timestamp in the file)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ArchError("--plot needs matplotlib, which is not installed", None,
                        "pip install 'archdsl[plot]'") from None
    import matplotlib.pyplot as plt

    fig = figure(results, title)
    try:
        fig.savefig(path, metadata={"Software": None})
    except OSError as e:
        raise ArchError(f"cannot write {path}: {e.strerror}") from None
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- memory below the layer-by-layer floor

def memory_rows(rep) -> list[list[str]]:
    """The arena with and without in-place depthwise and patches (analysis.patch.MemoryReport)."""
    dtype = {4: "fp32", 1: "int8"}.get(rep.elem_bytes, f"{rep.elem_bytes}-byte")
    rows = [
        [f"layer-by-layer floor ({dtype}: largest input + output of one step)", _mib(rep.floor_bytes)],
        ["arena, plain (what `compile --target c` allocates by default)", _mib(rep.plain.arena_bytes)],
        ["arena with in-place depthwise", _mib(rep.inplace.arena_bytes)],
    ]
    if rep.patch is None:
        rows.append(["patch-based first stages", "none (turned off, or none beats running whole within the budget)"])
    else:
        p = rep.patch
        rows += [
            ["patch plan", f"{p.grid[0]}x{p.grid[1]} tiles over the first {p.prefix} steps (up to {p.output})"],
            ["arena with in-place depthwise and patches", _mib(rep.patched.arena_bytes)],
            ["recomputed mult-adds", f"{p.extra_macs:,} (+{100 * p.extra_fraction:.2f}% of {p.network_macs:,})"],
        ]
    if not rep.input_in_arena:
        rows.append(["input, outside the arena (read from the caller's buffer)",
                     _mib(rep.input_bytes)])
    rows.append(["remaining peak", rep.peak_where()])
    return rows


def memory_json(rep) -> dict:
    p = rep.patch
    return {
        "elem_bytes": rep.elem_bytes,
        "floor_bytes": rep.floor_bytes,
        "arena_plain_bytes": rep.plain.arena_bytes,
        "arena_inplace_dw_bytes": rep.inplace.arena_bytes,
        "arena_patched_bytes": rep.patched.arena_bytes,
        "input_in_arena": rep.input_in_arena,
        "patch": None if p is None else {"prefix_steps": p.prefix, "prefix_output": p.output, "grid": list(p.grid),
                                         "extra_macs": p.extra_macs, "extra_fraction": round(p.extra_fraction, 6)},
        "peak": rep.peak_where(),
    }


def render_memory(graph: Graph, rep, fmt: str) -> str | None:
    if fmt == "json":
        return json.dumps({"network": graph.name, "memory": memory_json(rep)}, indent=2)
    rows = memory_rows(rep)
    if fmt == "markdown":
        return "\n".join(_markdown(["memory", "value"], rows))
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([["memory", "value"], *rows])
        return buf.getvalue()
    _console().print(_rich_table("Activation memory", ["total", "value"], rows))
    return None


def plot_memory(path: Path, rep, title: str) -> None:
    """Live activation bytes per step, plain against patched (MCUNetV2's memory-profile figure)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ArchError("--plot-memory needs matplotlib, which is not installed", None,
                        "pip install 'archdsl[plot]'") from None
    import os
    import tempfile

    steps = rep.steps
    xs = list(range(len(steps)))
    kib = 1024.0
    plain = [b / kib for b in rep.plain.live_bytes[1:]]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.09 * len(xs) + 3), 4.8), dpi=100)
    ax.bar(xs, plain, width=0.9, color="#c7c7c7", label=f"layer by layer (arena {rep.plain.arena_bytes / kib:,.1f} KiB)")
    if rep.patch is not None:
        patched = [b / kib for b in rep.patched.live_bytes[1:]]
        ax.bar(xs, patched, width=0.5, color="#1f77b4",
               label=f"{rep.patch.grid[0]}x{rep.patch.grid[1]} patches + in-place dw "
                     f"(arena {rep.patched.arena_bytes / kib:,.1f} KiB, +{100 * rep.patch.extra_fraction:.1f}% mult-adds)")
        ax.axvspan(-0.5, rep.patch.prefix - 0.5, color="#1f77b4", alpha=0.08, label="run tile by tile")
        ax.axhline(rep.patched.arena_bytes / kib, color="#1f77b4", linestyle="--", linewidth=0.8)
    elif rep.inplace.arena_bytes < rep.plain.arena_bytes:
        ax.bar(xs, [b / kib for b in rep.inplace.live_bytes[1:]], width=0.5, color="#1f77b4",
               label=f"in-place depthwise (arena {rep.inplace.arena_bytes / kib:,.1f} KiB)")
    ax.axhline(rep.plain.arena_bytes / kib, color="#7f7f7f", linestyle="--", linewidth=0.8)
    ax.set_xlabel("step (fused layer) in execution order")
    ax.set_ylabel("live activations (KiB)")
    ax.set_xlim(-0.5, len(xs) - 0.5)
    every = max(1, len(xs) // 24)
    ax.set_xticks(xs[::every])
    ax.set_xticklabels([steps[k].main.row.name for k in xs[::every]], rotation=60, ha="right", fontsize=7)
    dtype = {4: "fp32", 1: "int8"}.get(rep.elem_bytes, f"{rep.elem_bytes}-byte")
    ax.set_title(f"{title}: live activation memory per step ({dtype})")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".plot-", suffix=path.suffix or ".png", dir=path.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, format=(path.suffix[1:] or "png").lower(), metadata={"Software": None})
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; a plot is not
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, ValueError) as e:
        raise ArchError(f"cannot write {path}: {getattr(e, 'strerror', None) or e}") from None
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- int8 figures (stats --int8)

REQUANT_BYTES = 8  # an int32 multiplier and an int32 shift per output channel


def int8_figures(graph: Graph) -> dict:
    """What an int8 build of `graph` keeps in flash and RAM, from the shapes alone: per layer with
    weights, the int8 weights (BN folded), the int32 biases and the per-channel requantization
    (multiplier, shift); the arena at one byte per element (the same plan as the C target's).
    A layer quantized per tensor (an fc, usually) stores one (multiplier, shift) pair, 8·(O−1) B less."""
    from .analysis.memory import plan_memory
    from .quant.network import weight_steps

    layers = []
    for step in weight_steps(graph):
        main = step.main
        w = main.params["weight"]
        cout = int(w.shape[0])
        row = {"name": main.name, "line": main.row.line if main.row else 0, "op": main.op.name,
               "weights": w.numel, "bias": 4 * cout, "requant": REQUANT_BYTES * cout}
        row["total"] = row["weights"] + row["bias"] + row["requant"]
        layers.append(row)
    plan = plan_memory(graph, elem_bytes=1)
    return {"layers": layers, "constant_bytes": sum(r["total"] for r in layers),
            "arena_bytes": plan.arena_bytes, "peak_live_bytes": plan.peak_live_bytes}


def render_int8(graph: Graph, fmt: str) -> str | None:
    f = int8_figures(graph)
    if fmt == "json":
        return json.dumps({"network": graph.name, "int8": f}, indent=2)
    head = ["layer", "line", "op", "int8 weights", "int32 bias", "multipliers + shifts", "flash bytes"]
    rows = [[r["name"], str(r["line"]), r["op"], _int(r["weights"]), _int(r["bias"]), _int(r["requant"]),
             _int(r["total"])] for r in f["layers"]]
    totals_rows = [["int8 constants (flash: weights, biases, multipliers, shifts)", _int(f["constant_bytes"])],
                   ["int8 activation arena (RAM, the C target's plan)", _int(f["arena_bytes"])],
                   ["largest set of int8 tensors alive at once", _int(f["peak_live_bytes"])]]
    if fmt == "markdown":
        return "\n".join(_markdown(head, rows) + [""] + _markdown(["int8", "bytes"], totals_rows))
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([head, *[[c.replace(",", "") for c in r] for r in rows]])
        return buf.getvalue()
    console = _console()
    console.print(_rich_table("int8 per layer", head, rows))
    console.print(_rich_table("int8 totals", ["int8", "bytes"], totals_rows))
    return None
