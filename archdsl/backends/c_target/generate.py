"""Code generation: the lowered steps rendered into the C files through the jinja templates."""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import ArchError
from .. import codetext
from ..common import lowering_for, params_text, template_env
from .lowering import LOWERINGS, Emitter, activation_enum, c_floats, c_ident
from .toolchain import (ARM_CC, ARM_SIZE, HOST_OPT, MCU_LDFLAGS, MCU_LIBS, MCU_OPT, MCUS, QEMU, RUNTIME_HEADER,
                        WARN_FLAGS, file_base, templates)

# ---------------------------------------------------------------- compile

def _step_comment(step) -> str:
    n = step.main
    row = n.row
    ins = ", ".join(str(s) for s in n.in_shapes)
    macs = sum(node.macs for node in step.nodes)
    fused = [f"{node.op.name} {'folded' if node is step.bn else 'fused'}" for node in step.fused]
    text = f"{n.name}: line {row.line} `{row.text.strip()}`: {ins} -> {step.out_shape}, {macs:,} mult-adds"
    if fused:
        text += " (" + ", ".join(fused) + ")"
    return text  # escaped by the template's c_comment


ACT_MARKER = "@ARCH_ACT_VALUES@"  # in archdsl_rt.h: where the registry's activations go


def runtime_text(file: str) -> str:
    """A file of the C runtime (codegen_templates/c/runtime) as it is written: the header gets the
    activation enum rendered from the registry, the kernels are copied as they are."""
    text = (templates() / "runtime" / file).read_text(encoding="utf-8")
    if file == RUNTIME_HEADER:
        text = text.replace(ACT_MARKER, activation_enum())
    return text


def runtime_files() -> dict[str, str]:
    """{file: text} of the whole C runtime, header and every kernel file."""
    names = [RUNTIME_HEADER, *sorted(p.name for p in (templates() / "runtime").glob("rt_*.c"))]
    return {name: runtime_text(name) for name in names}


def generate(graph, weights: dict, name: str, prefix: str | None = None) -> dict[str, str]:
    """{relative file name: text} for `graph`. Files are named after `name`; the public C symbols
    and macros after `prefix` (default: `name`, made a C identifier)."""
    from ...analysis import analyze

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ArchError(f"'{name}' cannot name the generated C files", None,
                        "use letters, digits, '_', '-' and '.', e.g. --name my_net")
    name = file_base(name)
    prefix = prefix if prefix is not None else c_ident(name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ArchError(f"--prefix '{prefix}' is not a C identifier, so it cannot prefix the generated API",
                        None, "use letters, digits and underscores, not starting with a digit, e.g. --prefix my_net")
    analysis = analyze(graph)
    steps, plan, folded = analysis.steps, analysis.plan, analysis.folded(weights)
    e = Emitter(graph, prefix, weights, folded, plan)

    calls = []
    for step in steps:
        lines = lowering_for(LOWERINGS, step.main.op, "C", step.main.name)(e, step)
        calls.append({"comment": _step_comment(step), "lines": lines or ["/* a view of its input: no code */"],
                      "output": step.output, "out_macro": e.t(step.output), "out_shape": step.out_shape})
    e.t(graph.input_name)
    e.t(graph.output)

    tensors = []
    for tensor, macro in e.tensor_macros.items():
        buf = plan.buffers[plan.buffer_of[tensor]]
        assert buf.offset % 4 == 0
        tensors.append({"macro": macro, "offset": buf.offset // 4, "bytes": buf.offset,
                        "shape": str(graph.shape_of(tensor)), "name": tensor})

    env = template_env("c")
    runtime = sorted(e.runtime)
    inp, out = graph.input_shape, graph.output_shape
    ctx = {
        "name": name, "p": prefix, "P": prefix.upper(), "graph": graph, "spec": codetext.source_label(graph.source_name),
        "params": params_text(graph.params),
        "inp": inp, "out": out, "arena_bytes": plan.arena_bytes, "arena_floats": plan.arena_bytes // 4,
        "calls": calls, "tensors": tensors, "arrays": e.arrays, "runtime": runtime,
        "input_macro": e.tensor_macros[graph.input_name], "output_macro": e.tensor_macros[graph.output],
        "macs": analysis.macs, "n_weights": sum(int(a.values.size) for a in e.arrays),
        "n_steps": len(steps), "floats": c_floats,
        "warn_flags": " ".join(WARN_FLAGS), "host_opt": " ".join(HOST_OPT),
        "mcu_opt": " ".join(MCU_OPT), "mcu_ldflags": " ".join(MCU_LDFLAGS), "mcu_libs": " ".join(MCU_LIBS),
        "mcus": MCUS, "arm_cc": ARM_CC, "arm_size": ARM_SIZE, "qemu": QEMU,
    }

    def render(template: str) -> str:
        return env.get_template(template).render(ctx)

    files: dict[str, str] = {
        f"{name}.h": render("model.h.j2"),
        f"{name}.c": render("model.c.j2"),
        f"{name}_weights.h": render("weights.h.j2"),
        f"{name}_weights.c": render("weights.c.j2"),
        "main.c": render("main.c.j2"),
        "Makefile": render("Makefile.j2"),
        "mcu/mcu_main.c": render("mcu/mcu_main.c.j2"),
    }
    for f in (RUNTIME_HEADER, *runtime):
        files[f] = runtime_text(f)
    for f in ("startup.c", "semihost.c", "semihost.h", "link.ld"):
        files[f"mcu/{f}"] = (templates() / "mcu" / f).read_text(encoding="utf-8")
    return files


def compile(graph, weights, outdir, name, prefix: str | None = None) -> list[Path]:
    from ...fsutil import write_files_atomically

    return write_files_atomically(outdir, generate(graph, weights, name, prefix))
