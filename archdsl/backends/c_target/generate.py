"""Code generation: the lowered steps rendered into the C files through the jinja templates."""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import ArchError
from .. import codetext
from ..common import lowering_for, number, params_text, template_env
from ..codetext import c_comment
from .blob import c_words, place
from . import lowering_int8
from ...analysis.patch import tile_view
from .lowering import LOWERINGS, Emitter, activation_enum, buffer_macro, c_ident
from .tiles import tile_calls
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
    rt = templates() / "runtime"
    names = [RUNTIME_HEADER, lowering_int8.RUNTIME_HEADER, *sorted(p.name for p in rt.glob("rt_*.h")),
             *sorted(p.name for p in rt.glob("rt_*.c"))]
    return {name: runtime_text(name) for name in names}


def _int8_network(graph, weights):
    """The QuantizedNetwork of an int8 build (`weights` is one, or an int8 weight dict), else None."""
    from ...quant.weights_file import is_int8_dict

    if not isinstance(weights, dict):
        return weights
    if not is_int8_dict(weights):
        return None
    from ...quant.network import QuantizedNetwork

    return QuantizedNetwork.build(graph, weights)


def _qparams_c(p) -> dict:
    return {"scale": number(float(p.scale)) + "f", "zero_point": p.zero_point}


def generate(graph, weights: dict, name: str, prefix: str | None = None, memory=None) -> dict[str, str]:
    """{relative file name: text} for `graph`. Files are named after `name`; the public C symbols
    and macros after `prefix` (default: `name`, made a C identifier). With int8 weights (an int8
    weight file, from `archdsl quantize` or the import of an int8 .tflite, or a QuantizedNetwork)
    the runtime is int8. `memory`: the arena plan (analysis.memory.plan_memory's, with in-place
    depthwise or patches); default the plain one."""
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
    net = _int8_network(graph, weights)
    if net is None:
        steps, plan, folded = analysis.steps, analysis.plan, analysis.folded(weights)
        if memory is not None:
            plan = memory
        e = Emitter(graph, prefix, weights, folded, plan)
        e.scratch = {t: buffer_macro(i) for t, i in plan.scratch_of.items()}
        elem, elem_bytes, rt_header = "float", 4, RUNTIME_HEADER

        def lower(k: int, step) -> list[str]:
            return lowering_for(LOWERINGS, step.main.op, "C", step.main.name)(e, step)

        def lower_tile(k: int, ts) -> list[str]:
            return lower(k, tile_view(steps[k], ts))
    else:
        e, plan = lowering_int8.emitter(net, prefix, memory)
        steps = [q.step for q in net.steps]
        elem, elem_bytes, rt_header = "int8_t", 1, lowering_int8.RUNTIME_HEADER

        def lower(k: int, step) -> list[str]:
            return lowering_int8.lower_step(e, net.steps[k])

        def lower_tile(k: int, ts) -> list[str]:
            return lowering_int8.lower_step(e, net.steps[k].at_tile(ts))
    if memory is not None and memory.elem_bytes != elem_bytes:
        raise ArchError(f"the arena plan is for {memory.elem_bytes}-byte elements, the build's are {elem_bytes}")

    calls, start = [], 0
    if plan.patches is not None:
        start = plan.patches.prefix
        calls = tile_calls(e, graph, steps, plan, buffer_macro, lower_tile, elem)
    lowered = [(steps[k], lower(k, steps[k])) for k in range(start, len(steps))]
    for step, lines in lowered:
        calls.append({"comment": _step_comment(step), "lines": lines or ["/* a view of its input: no code */"],
                      "output": step.output, "out_macro": e.t(step.output), "out_shape": step.out_shape})
    e.t(graph.input_name)
    e.t(graph.output)

    tensors = []
    input_buffer = plan.buffer_of[graph.input_name]
    for tensor, macro in e.tensor_macros.items():
        buf = plan.buffers[plan.buffer_of[tensor]]
        assert buf.offset % elem_bytes == 0
        tensors.append({"macro": macro, "offset": buf.offset // elem_bytes, "bytes": buf.offset,
                        "shape": str(graph.shape_of(tensor)), "name": tensor,
                        # the input (or a view of it) read from the caller's buffer
                        "external": not plan.input_in_arena and buf.index == input_buffer})
    whole = set(plan.buffer_of.values())
    for buf in plan.buffers:  # tile, crop and one-plane buffers
        if buf.index not in whole:
            tensors.append({"macro": buffer_macro(buf.index), "offset": buf.offset // elem_bytes,
                            "bytes": buf.offset, "shape": f"{buf.size:,} bytes", "name": buf.what,
                            "external": False})

    env = template_env("c")
    runtime = sorted(e.runtime)
    tile_headers = sorted({TILE_HEADERS[f] for f in runtime if f in TILE_HEADERS})
    placed, block = place(e.arrays) if net is None else ([], None)
    inp, out = graph.input_shape, graph.output_shape
    ctx = {
        "name": name, "p": prefix, "P": prefix.upper(), "graph": graph, "spec": codetext.source_label(graph.source_name),
        "params": params_text(graph.params),
        "inp": inp, "out": out, "arena_bytes": plan.arena_bytes, "arena_elems": plan.arena_bytes // elem_bytes,
        "calls": calls, "tensors": tensors, "arrays": e.arrays, "runtime": runtime,
        "input_in_arena": plan.input_in_arena,
        "harness_input": f"{prefix}_input()" if plan.input_in_arena else "input_buffer",
        "harness_invoke": f"{prefix}_invoke()" if plan.input_in_arena else f"{prefix}_invoke_on(input_buffer)",
        "input_macro": e.tensor_macros[graph.input_name], "output_macro": e.tensor_macros[graph.output],
        "macs": analysis.macs, "n_weights": sum(int(a.values.size) for a in e.arrays),
        "n_steps": len(steps), "tile_headers": tile_headers,
        "int8": net is not None, "elem": elem, "elem_bytes": elem_bytes,
        "elem_plural": "floats" if net is None else "bytes", "rt_header": rt_header,
        "elem_name": "float32" if net is None else "int8",
        "structs": getattr(e, "structs", []),
        "constants": lowering_int8.c_ints,  # int8 builds only: float weights are the words below
        "n_const_bytes": sum(int(a.values.nbytes) for a in e.arrays),
        "in_q": _qparams_c(net.input) if net is not None else None,
        "out_q": _qparams_c(net.output) if net is not None else None,
        # float weights are one block of exact hexadecimal words (blob.py); int8 ones typed arrays
        "placed": placed, "n_words": block.size // 2 if block is not None else 0,
        "block_bytes": block.nbytes if block is not None else 0,
        "words": c_words(block, placed, c_comment) if block is not None else "",
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
    for f in (rt_header, *runtime):
        files[f] = runtime_text(f)
    for f in tile_headers:
        files[f] = runtime_text(f)
    for f in ("startup.c", "semihost.c", "semihost.h", "link.ld"):
        files[f"mcu/{f}"] = (templates() / "mcu" / f).read_text(encoding="utf-8")
    return files


# the kernels of patches and in-place layers, and the header that declares them
TILE_HEADERS = {"rt_tile.c": "rt_tile.h", "rt_dwconv_inplace.c": "rt_tile.h", "rt_qinplace.c": "rt_qinplace.h"}


def compile(graph, weights, outdir, name, prefix: str | None = None, memory=None) -> list[Path]:
    from ...fsutil import write_files_atomically

    return write_files_atomically(outdir, generate(graph, weights, name, prefix, memory))
