"""The C target: a dependency-free C99 runtime for microcontrollers (and any host).

`compile` writes, for a network `<p>`:

    <p>.h            the API, the shapes, the arena size and the layout (NCHW), stated once
    <p>.c            the call sequence: one kernel call per fused step (analysis.schedule), each with a
                     comment naming its spec line, shape and mult-adds; the one static arena
    <p>_weights.h/.c the weights, `const` (in flash on an MCU), BatchNorm folded, printed with %.9g
    archdsl_rt.h, rt_*.c   the hand-written kernels the network uses (codegen_templates/c/runtime)
    main.c           a host program: runs files of inputs, or times the network
    mcu/             a Cortex-M4/M7 harness for QEMU's mps2 boards (startup, semihosting, linker script)
    Makefile         host, cortex-m4 and cortex-m7 builds

The backend is a table (`LOWERINGS`) of small functions, one per op: each emits the call for a
step whose main node is of that op. Shapes, padding and mult-adds come from the IR; the arena
layout comes from analysis.memory.plan_memory, the same plan `stats` reports.

`run` builds the written sources with the host compiler (cached by content) and runs them on a
batch; `build_mcu` / `run_mcu` do the same for Cortex-M under qemu-system-arm.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ArchError
from ..weights import bn_scale_shift

NAME = "c"
EXTRA = None

# Flags stated once: the generated Makefile is rendered from these, and `run` uses them too.
WARN_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wdouble-promotion"]
HOST_OPT = ["-O2"]
SANITIZE_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer"]
MCU_OPT = ["-O3", "-ffp-contract=fast", "-ffunction-sections", "-fdata-sections"]  # -O3: the register tiles unroll
MCU_LDFLAGS = ["-nostdlib", "-Wl,--gc-sections"]
MCU_LIBS = ["-lm", "-lc", "-lgcc"]


@dataclass(frozen=True)
class Mcu:
    name: str
    cpu_flags: tuple[str, ...]
    machine: str  # qemu-system-arm -M
    board: str


MCUS = {
    "cortex-m4": Mcu("cortex-m4", ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                     "mps2-an386", "Arm MPS2 AN386 (Cortex-M4F)"),
    "cortex-m7": Mcu("cortex-m7", ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                     "mps2-an500", "Arm MPS2 AN500 (Cortex-M7)"),
}
ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
INSNS_PER_TICK = 40  # CMSDK TIMER0 runs at 25 MHz; with -icount shift=0 one guest instruction is 1 ns

RUNTIME_HEADER = "archdsl_rt.h"
ALWAYS = ("rt_act.c",)  # every kernel's epilogue


def host_cc() -> str | None:
    for cc in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def unavailable() -> str | None:
    if host_cc() is None:
        return "no C compiler on PATH (gcc, cc or clang; or set CC)"
    return None


def mcu_unavailable() -> str | None:
    missing = [tool for tool in (ARM_CC, ARM_SIZE, QEMU) if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not found (apt-get install --no-install-recommends "
                "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")
    return None


def _templates() -> Path:
    from ..resources import templates_dir

    return templates_dir() / "c"


# ---------------------------------------------------------------- code generation helpers

def c_ident(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return s if s and not s[0].isdigit() else "_" + s


def c_float(v: float) -> str:
    """%.9g (round-trips a float32), written as a float constant."""
    s = "%.9g" % v
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


def c_floats(values: np.ndarray, per_line: int = 8, indent: str = "    ") -> str:
    flat = np.asarray(values, dtype=np.float32).ravel()
    if not np.all(np.isfinite(flat)):
        raise ArchError("the weights hold NaN or infinite values, which C constants cannot express",
                        None, "check the weight file")
    items = [c_float(v) for v in flat.astype(np.float64).tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(indent + line for line in lines)


def _comment(text: str) -> str:
    return " ".join(text.replace("*/", "* /").replace("/*", "/ *").split())


@dataclass
class ConstArray:
    name: str
    values: np.ndarray
    what: str


@dataclass
class Emitter:
    """What the lowerings write into: tensor pointers, weight arrays, kernels used."""

    graph: object
    prefix: str
    weights: dict
    folded: dict
    plan: object
    arrays: list[ConstArray] = field(default_factory=list)
    runtime: set[str] = field(default_factory=lambda: set(ALWAYS))
    tensor_macros: dict[str, str] = field(default_factory=dict)

    def t(self, tensor: str) -> str:
        """The C expression of a tensor: a macro for its place in the arena."""
        if tensor not in self.tensor_macros:
            base = "T_" + c_ident(tensor)
            name, k = base, 2
            while name in self.tensor_macros.values():
                name, k = f"{base}_{k}", k + 1
            self.tensor_macros[tensor] = name
        return self.tensor_macros[tensor]

    def array(self, node, local: str, values: np.ndarray, what: str) -> str:
        name = f"{self.prefix}_{c_ident(node.name)}_{local}"
        self.arrays.append(ConstArray(name, np.ascontiguousarray(values, dtype=np.float32), what))
        return name

    def folded_weights(self, step) -> tuple[str, str]:
        w, b = self.folded[step.main.name]
        what = f"{step.main.name}: {'x'.join(map(str, w.shape))}" + (
            f", {step.bn.name} folded" if step.bn is not None else "")
        return (self.array(step.main, "w", w, what), self.array(step.main, "b", b, f"{step.main.name}: bias"))

    def use(self, *files: str) -> None:
        self.runtime.update(files)


def act_of(step) -> str:
    if step.activation is None:
        return "ARCH_ACT_NONE"
    return ACTIVATIONS[step.activation.op.name]


# The activations a kernel epilogue can run (enum arch_act in archdsl_rt.h).
ACTIVATIONS = {
    "relu": "ARCH_ACT_RELU",
    "relu6": "ARCH_ACT_RELU6",
    "sigmoid": "ARCH_ACT_SIGMOID",
    "hsigmoid": "ARCH_ACT_HSIGMOID",
    "hswish": "ARCH_ACT_HSWISH",
}


def _call(fn: str, *args) -> str:
    return f"{fn}({', '.join(str(a) for a in args)});"


# ---------------------------------------------------------------- lowerings: one per op

def _conv(e: Emitter, step) -> list[str]:
    n = step.main
    a, x, y = n.attrs, n.in_shapes[0], n.out_shape
    (kh, kw), (sh, sw), (pt, pl, _, _) = a["kernel"], a["stride"], a["pads"]
    w, b = e.folded_weights(step)
    if (kh, kw) == (1, 1) and (sh, sw) == (1, 1) and pt == pl == 0 and a["groups"] == 1 and (y.h, y.w) == (x.h, x.w):
        e.use("rt_gemm.c")
        return [_call("arch_conv1x1", e.t(n.inputs[0]), x.c, x.h * x.w, w, b, y.c, e.t(step.output), act_of(step))]
    if a["groups"] == x.c and a["groups"] > 1:  # depthwise written as a grouped conv
        return _dw_call(e, step, w, b)
    e.use("rt_conv.c")
    return [_call("arch_conv2d", e.t(n.inputs[0]), x.c, x.h, x.w, w, b, y.c, a["groups"], kh, kw, sh, sw, pt, pl,
                  e.t(step.output), y.h, y.w, act_of(step))]


def _dw_call(e: Emitter, step, w: str, b: str) -> list[str]:
    n = step.main
    a, x, y = n.attrs, n.in_shapes[0], n.out_shape
    (kh, kw), (sh, sw), (pt, pl, _, _) = a["kernel"], a["stride"], a["pads"]
    e.use("rt_dwconv.c")
    return [_call("arch_conv_dw", e.t(n.inputs[0]), x.c, x.h, x.w, w, b, y.c // x.c, kh, kw, sh, sw, pt, pl,
                  e.t(step.output), y.h, y.w, act_of(step))]


def _conv_dw(e: Emitter, step) -> list[str]:
    w, b = e.folded_weights(step)
    return _dw_call(e, step, w, b)


def _fc(e: Emitter, step) -> list[str]:
    n = step.main
    w, b = e.folded_weights(step)
    e.use("rt_fc.c")
    return [_call("arch_fc", e.t(n.inputs[0]), n.in_shapes[0].numel, w, b, n.out_shape.c, e.t(step.output),
                  act_of(step))]


def _bn(e: Emitter, step) -> list[str]:
    """A BatchNorm that could not fold into a conv: a per-channel affine map."""
    n = step.main
    scale, shift = bn_scale_shift(n, e.weights)
    s = e.array(n, "scale", scale, f"{n.name}: gamma / sqrt(running_var + eps)")
    t = e.array(n, "shift", shift, f"{n.name}: beta - running_mean * scale")
    x = n.in_shapes[0]
    e.use("rt_eltwise.c")
    return [_call("arch_affine", e.t(n.inputs[0]), s, t, x.c, x.h * x.w, e.t(step.output), act_of(step))]


def _activation(e: Emitter, step) -> list[str]:
    n = step.main
    e.use("rt_eltwise.c")
    return [_call("arch_activation", e.t(n.inputs[0]), e.t(step.output), n.out_shape.numel, ACTIVATIONS[n.op.name])]


def _softmax(e: Emitter, step) -> list[str]:
    n = step.main
    x = n.in_shapes[0]
    e.use("rt_softmax.c")
    return [_call("arch_softmax", e.t(n.inputs[0]), x.c, x.h * x.w, e.t(step.output))]


def _add(e: Emitter, step) -> list[str]:
    n = step.main
    e.use("rt_eltwise.c")
    return [_call("arch_add", e.t(n.inputs[0]), e.t(n.inputs[1]), e.t(step.output), n.out_shape.numel,
                  act_of(step))]


def _mul(e: Emitter, step) -> list[str]:
    n = step.main
    x, g = n.in_shapes
    e.use("rt_eltwise.c")
    return [_call("arch_mul", e.t(n.inputs[0]), e.t(n.inputs[1]), x.c, x.h * x.w, g.h * g.w, e.t(step.output))]


def _concat(e: Emitter, step) -> list[str]:
    n = step.main
    e.use("rt_eltwise.c")
    lines, offset = [], 0
    for tensor, shape in zip(n.inputs, n.in_shapes):
        lines.append(_call("arch_copy", e.t(tensor), f"{e.t(step.output)} + {offset}", shape.numel))
        offset += shape.numel
    return lines


def _pool(kernel: str, global_kernel: str) -> Callable:
    def lower(e: Emitter, step) -> list[str]:
        n = step.main
        a, x, y = n.attrs, n.in_shapes[0], n.out_shape
        e.use("rt_pool.c")
        if a.get("global"):
            return [_call(global_kernel, e.t(n.inputs[0]), x.c, x.h * x.w, e.t(step.output))]
        (kh, kw), (sh, sw), (pt, pl, _, _) = a["kernel"], a["stride"], a["pads"]
        return [_call(kernel, e.t(n.inputs[0]), x.c, x.h, x.w, kh, kw, sh, sw, pt, pl, e.t(step.output), y.h, y.w)]

    return lower


def _view(e: Emitter, step) -> list[str]:
    """flatten and dropout (at inference): the output is the input's buffer, viewed anew."""
    return []


LOWERINGS: dict[str, Callable[[Emitter, object], list[str]]] = {
    "conv": _conv,
    "conv dw": _conv_dw,
    "fc": _fc,
    "bn": _bn,
    "relu": _activation,
    "relu6": _activation,
    "sigmoid": _activation,
    "hsigmoid": _activation,
    "hswish": _activation,
    "softmax": _softmax,
    "add": _add,
    "mul": _mul,
    "concat": _concat,
    "avg pool": _pool("arch_avg_pool", "arch_global_avg_pool"),
    "global avg pool": _pool("arch_avg_pool", "arch_global_avg_pool"),
    "max pool": _pool("arch_max_pool", "arch_global_max_pool"),
    "global max pool": _pool("arch_max_pool", "arch_global_max_pool"),
    "flatten": _view,
    "dropout": _view,
}


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
    return _comment(text)


def generate(graph, weights: dict, name: str, prefix: str | None = None) -> dict[str, str]:
    """{relative file name: text} for `graph`. Files are named after `name`; the public C symbols
    and macros after `prefix` (default: `name`, made a C identifier)."""
    import jinja2

    from ..analysis.costs import totals
    from ..analysis.memory import plan_memory
    from ..analysis.schedule import schedule
    from ..weights import fold_bn

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ArchError(f"'{name}' cannot name the generated C files", None,
                        "use letters, digits, '_', '-' and '.', e.g. --name my_net")
    prefix = prefix if prefix is not None else c_ident(name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ArchError(f"--prefix '{prefix}' is not a C identifier, so it cannot prefix the generated API",
                        None, "use letters, digits and underscores, not starting with a digit, e.g. --prefix my_net")
    steps = schedule(graph)
    plan = plan_memory(graph, steps)
    folded = fold_bn(graph, steps, weights)
    e = Emitter(graph, prefix, weights, folded, plan)

    calls = []
    for step in steps:
        op = step.main.op.name
        if op not in LOWERINGS:
            raise ArchError(f"the C target has no lowering for '{op}' (node {step.main.name})")
        lines = LOWERINGS[op](e, step)
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

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_templates())), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    t = totals(graph)
    runtime = sorted(e.runtime)
    inp, out = graph.input_shape, graph.output_shape
    ctx = {
        "name": name, "p": prefix, "P": prefix.upper(), "graph": graph, "spec": Path(graph.source_name).name,
        "params": ", ".join(f"{k}={v}" for k, v in graph.params.items()),
        "inp": inp, "out": out, "arena_bytes": plan.arena_bytes, "arena_floats": plan.arena_bytes // 4,
        "calls": calls, "tensors": tensors, "arrays": e.arrays, "runtime": runtime,
        "input_macro": e.tensor_macros[graph.input_name], "output_macro": e.tensor_macros[graph.output],
        "macs": t["macs"], "n_weights": sum(int(a.values.size) for a in e.arrays),
        "n_steps": len(steps), "floats": c_floats,
        "warn_flags": " ".join(WARN_FLAGS), "host_opt": " ".join(HOST_OPT),
        "mcu_opt": " ".join(MCU_OPT), "mcu_ldflags": " ".join(MCU_LDFLAGS), "mcu_libs": " ".join(MCU_LIBS),
        "mcus": MCUS, "arm_cc": ARM_CC, "arm_size": ARM_SIZE, "qemu": QEMU,
    }
    files: dict[str, str] = {
        f"{name}.h": env.get_template("model.h.j2").render(ctx),
        f"{name}.c": env.get_template("model.c.j2").render(ctx),
        f"{name}_weights.h": env.get_template("weights.h.j2").render(ctx),
        f"{name}_weights.c": env.get_template("weights.c.j2").render(ctx),
        "main.c": env.get_template("main.c.j2").render(ctx),
        "Makefile": env.get_template("Makefile.j2").render(ctx),
        "mcu/mcu_main.c": env.get_template("mcu/mcu_main.c.j2").render(ctx),
    }
    rt = _templates() / "runtime"
    files[RUNTIME_HEADER] = (rt / RUNTIME_HEADER).read_text(encoding="utf-8")
    for f in runtime:
        files[f] = (rt / f).read_text(encoding="utf-8")
    for f in ("startup.c", "semihost.c", "semihost.h", "link.ld"):
        files[f"mcu/{f}"] = (_templates() / "mcu" / f).read_text(encoding="utf-8")
    return files


def compile(graph, weights, outdir, name, prefix: str | None = None) -> list[Path]:
    from ..fsutil import write_files_atomically

    return write_files_atomically(outdir, generate(graph, weights, name, prefix))


# ---------------------------------------------------------------- building

def model_sources(outdir: Path, name: str) -> list[Path]:
    """The model's own C files (not the harnesses), in a fixed order."""
    outdir = Path(outdir)
    rt = sorted(p for p in outdir.glob("rt_*.c"))
    return [outdir / f"{name}.c", outdir / f"{name}_weights.c", *rt]


def _cache_root() -> Path:
    root = os.environ.get("ARCHDSL_CACHE")
    base = Path(root) if root else Path(tempfile.gettempdir()) / f"archdsl-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    path = base / "c"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_tool(cmd: list[str], what: str, cwd: Path | None = None, timeout: float | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ArchError(f"{what} timed out after {timeout:.0f} s") from None
    except OSError as e:
        raise ArchError(f"{what}: cannot run {cmd[0]} ({e.strerror})") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-30:])
        raise ArchError(f"{what} failed (exit {proc.returncode})", None, tail or None)
    return proc.stdout


def _compile_object(cc: str, flags: list[str], src: Path, includes: list[Path]) -> Path:
    """Compile one source to an object, cached by (compiler, flags, source and header bytes)."""
    h = hashlib.sha256()
    h.update(cc.encode())
    h.update("\0".join(flags).encode())
    h.update(src.read_bytes())
    for inc in includes:
        for hdr in sorted(inc.glob("*.h")):
            h.update(hdr.name.encode())
            h.update(hdr.read_bytes())
    obj = _cache_root() / "obj" / f"{src.stem}-{h.hexdigest()[:24]}.o"
    if obj.exists():
        return obj
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")
    _run_tool([cc, *flags, *[f"-I{i}" for i in includes], "-c", str(src), "-o", str(tmp)], f"compiling {src.name}")
    os.replace(tmp, obj)
    return obj


def build(outdir, name: str, *, sanitize: bool = False, cflags: list[str] | None = None,
          exe: Path | None = None) -> Path:
    """Build the host program (main.c + the model) from what `compile` wrote; returns its path."""
    outdir = Path(outdir)
    cc = host_cc()
    if cc is None:
        raise ArchError("the C target needs a C compiler", None, unavailable())
    flags = [*(cflags if cflags is not None else (SANITIZE_FLAGS if sanitize else HOST_OPT)), *WARN_FLAGS]
    objs = [_compile_object(cc, flags, src, [outdir]) for src in [*model_sources(outdir, name), outdir / "main.c"]]
    h = hashlib.sha256("\0".join([cc, *flags, *map(str, objs)]).encode()).hexdigest()[:24]
    target = exe or (_cache_root() / "bin" / f"{name}-{h}")
    if exe is None and target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    link_extra = [f for f in flags if f.startswith("-fsanitize")]
    _run_tool([cc, *link_extra, *map(str, objs), "-lm", "-o", str(tmp)], f"linking {name}")
    os.replace(tmp, target)
    return target


def run_exe(exe: Path, inputs: np.ndarray, out_size: int, timeout: float = 600,
            trace: dict | None = None) -> np.ndarray:
    """Run a host program built by `build` on a batch; with `trace` (a dict), also collect every
    step's output (the program must be built with -DARCHDSL_TRACE): name -> (N, C, H, W)."""
    with tempfile.TemporaryDirectory(prefix="archdsl-run-") as tmp:
        fin, fout, ftrace = Path(tmp) / "input.bin", Path(tmp) / "output.bin", Path(tmp) / "trace.bin"
        np.ascontiguousarray(inputs, dtype="<f4").tofile(fin)
        args = [str(fin), str(fout)] + ([str(ftrace)] if trace is not None else [])
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        try:
            proc = subprocess.run([str(exe), *args], capture_output=True, text=True,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise ArchError(f"the C program timed out after {timeout:.0f} s") from None
        if proc.returncode != 0 or proc.stderr.strip():
            raise ArchError(f"the C program failed (exit {proc.returncode})", None,
                            "\n".join(proc.stderr.strip().splitlines()[-30:]) or None)
        out = np.fromfile(fout, dtype="<f4")
        if trace is not None:
            trace.update(_read_trace(ftrace.read_bytes()))
    n = inputs.shape[0]
    if out.size != n * out_size:
        raise ArchError(f"the C program wrote {out.size} values, expected {n * out_size}")
    return out.reshape(n, out_size)


def _read_trace(data: bytes) -> dict[str, np.ndarray]:
    per_name: dict[str, list[np.ndarray]] = {}
    pos = 0
    while pos < len(data):
        (n,) = np.frombuffer(data, np.int32, 1, pos)
        pos += 4
        name = data[pos:pos + n].decode()
        pos += n
        c, h, w = (int(v) for v in np.frombuffer(data, np.int32, 3, pos))
        pos += 12
        per_name.setdefault(name, []).append(np.frombuffer(data, np.float32, c * h * w, pos).reshape(c, h, w))
        pos += 4 * c * h * w
    return {k: np.stack(v) for k, v in per_name.items()}


def _batch(graph_in_shape, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    c, h, w = graph_in_shape
    if x.shape == (c, h, w):
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (c, h, w):
        raise ArchError(f"the input has shape {tuple(x.shape)}, the network takes (N, {c}, {h}, {w}) (NCHW)")
    return x


def read_shapes(outdir, name: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(input CHW, output CHW) from the generated header, so `run` needs only the folder."""
    path = Path(outdir) / f"{name}.h"
    if not path.is_file():
        raise ArchError(f"{path} is missing: was the folder written by `archdsl compile --target c`?")
    text = path.read_text(encoding="utf-8")
    m = re.search(r"#define (\w+)_LAYOUT_NCHW 1", text)
    P = m.group(1) if m else name.upper()

    def get(macro):
        m = re.search(rf"#define {P}_{macro}\s+(\d+)", text)
        if not m:
            raise ArchError(f"{name}.h has no {P}_{macro}: was the folder written by `archdsl compile --target c`?")
        return int(m.group(1))

    return ((get("INPUT_C"), get("INPUT_H"), get("INPUT_W")), (get("OUTPUT_C"), get("OUTPUT_H"), get("OUTPUT_W")))


def run(outdir, name, x, *, sanitize: bool = False) -> np.ndarray:
    """Build (host compiler, cached) and run the generated C on an NCHW batch; returns (N, C, H, W)."""
    in_chw, out_chw = read_shapes(outdir, name)
    xb = _batch(in_chw, x)
    exe = build(outdir, name, sanitize=sanitize)
    out = run_exe(exe, xb, int(np.prod(out_chw)))
    return out.reshape(xb.shape[0], *out_chw)


def run_layers(outdir, name, x) -> dict[str, np.ndarray]:
    """Every fused step's output, by the name of its last node (e.g. 'conv3.relu'): (N, C, H, W)."""
    in_chw, out_chw = read_shapes(outdir, name)
    xb = _batch(in_chw, x)
    exe = build(outdir, name, cflags=[*HOST_OPT, "-DARCHDSL_TRACE"])
    layers: dict[str, np.ndarray] = {}
    run_exe(exe, xb, int(np.prod(out_chw)), trace=layers)
    return layers


# ---------------------------------------------------------------- Cortex-M

@dataclass
class McuBuild:
    mcu: Mcu
    elf: Path
    sizes: dict[str, dict[str, int]]  # object -> {text, data, bss}
    elf_size: dict[str, int]

    @property
    def weights_bytes(self) -> int:
        return sum(v["text"] + v["data"] for k, v in self.sizes.items() if k.endswith("_weights.o"))

    @property
    def code_bytes(self) -> int:
        return sum(v["text"] + v["data"] for k, v in self.sizes.items() if not k.endswith("_weights.o"))

    @property
    def arena_bytes(self) -> int:
        return sum(v["bss"] for v in self.sizes.values())


def _parse_size(text: str) -> dict[str, dict[str, int]]:
    out = {}
    for line in text.strip().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 6:
            out[Path(parts[5]).name] = {"text": int(parts[0]), "data": int(parts[1]), "bss": int(parts[2])}
    return out


def build_mcu(outdir, name: str, mcu: str = "cortex-m4", builddir: Path | None = None,
              opt: list[str] | None = None, trace: bool = False) -> McuBuild:
    """Cross-compile the model and the QEMU harness for a Cortex-M (optimisation flags `opt`,
    default MCU_OPT); sizes from arm-none-eabi-size."""
    if mcu not in MCUS:
        raise ArchError(f"unknown MCU '{mcu}'", None, f"choose one of {', '.join(MCUS)}")
    why = mcu_unavailable()
    if why:
        raise ArchError("the Cortex-M build needs the Arm toolchain and QEMU", None, why)
    m = MCUS[mcu]
    outdir = Path(outdir)
    flags = [*m.cpu_flags, *(MCU_OPT if opt is None else opt), *WARN_FLAGS, *(["-DARCHDSL_TRACE"] if trace else [])]
    model = model_sources(outdir, name)
    harness = [outdir / "mcu" / f for f in ("startup.c", "semihost.c", "mcu_main.c")]
    objs = [_compile_object(ARM_CC, flags, src, [outdir, outdir / "mcu"]) for src in [*model, *harness]]
    model_objs = objs[:len(model)]
    h = hashlib.sha256("\0".join([mcu, *map(str, objs), (outdir / "mcu" / "link.ld").read_text()]).encode())
    elf = (builddir or (_cache_root() / "elf")) / f"{name}-{mcu}-{h.hexdigest()[:24]}.elf"
    if not elf.exists():
        elf.parent.mkdir(parents=True, exist_ok=True)
        tmp = elf.with_name(elf.name + f".{os.getpid()}.tmp")
        _run_tool([ARM_CC, *m.cpu_flags, *MCU_LDFLAGS, "-T", str(outdir / "mcu" / "link.ld"), *map(str, objs),
                   *MCU_LIBS, "-o", str(tmp)], f"linking {name} for {mcu}")
        os.replace(tmp, elf)
    sizes_text = _run_tool([ARM_SIZE, *map(str, model_objs)], "arm-none-eabi-size")
    # the cache names objects by hash: report them by their source names
    sizes = {}
    for src, (obj, val) in zip(model, _parse_size(sizes_text).items()):
        sizes[src.stem + ".o"] = val
    elf_size = next(iter(_parse_size(_run_tool([ARM_SIZE, str(elf)], "arm-none-eabi-size")).values()))
    return McuBuild(m, elf, sizes, elf_size)


@dataclass
class McuRun:
    output: np.ndarray
    ticks: list[int]
    stack_bytes: int
    log: str
    step_ticks: dict[str, int] = field(default_factory=dict)  # per step, with build_mcu(trace=True)

    @property
    def instructions(self) -> list[int]:
        return [t * INSNS_PER_TICK for t in self.ticks]


def run_mcu(b: McuBuild, x: np.ndarray, out_size: int, timeout: float = 300) -> McuRun:
    """Run the ELF under qemu-system-arm (semihosting, -icount shift=0) on a batch of inputs."""
    with tempfile.TemporaryDirectory(prefix="archdsl-qemu-") as tmp:
        np.ascontiguousarray(x, dtype="<f4").tofile(Path(tmp) / "input.bin")
        cmd = [QEMU, "-M", b.mcu.machine, "-display", "none", "-monitor", "none", "-serial", "none",
               "-icount", "shift=0", "-chardev", "file,id=sh0,path=console.txt",
               "-semihosting-config", "enable=on,target=native,chardev=sh0", "-kernel", str(b.elf)]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ArchError(f"QEMU ({b.mcu.machine}) timed out after {timeout:.0f} s") from None
        log = (Path(tmp) / "console.txt").read_text(errors="replace") if (Path(tmp) / "console.txt").exists() else ""
        if proc.returncode != 0:
            what = "a fault (HardFault/UsageFault)" if proc.returncode == 99 else f"exit {proc.returncode}"
            raise ArchError(f"the model failed on {b.mcu.machine}: {what}", None,
                            (log + proc.stderr).strip()[-2000:] or None)
        out_path = Path(tmp) / "output.bin"
        out = np.fromfile(out_path, dtype="<f4") if out_path.exists() else np.zeros(0, np.float32)
    n = x.shape[0]
    if out.size != n * out_size:
        raise ArchError(f"the MCU run wrote {out.size} values, expected {n * out_size}", None, log[-2000:] or None)
    ticks = [int(v) for v in re.findall(r"^ticks=(\d+)", log, re.M)]
    stack = re.search(r"stack=(\d+)", log)
    steps: dict[str, int] = {}
    for name, t in re.findall(r"^step (\S+) ticks=(\d+)", log, re.M):
        steps.setdefault(name, int(t))  # the first image's
    return McuRun(out.reshape(n, out_size), ticks, int(stack.group(1)) if stack else -1, log, steps)


def size_table(b: McuBuild, arena_bytes: int, stack_bytes: int | None = None) -> list[tuple[str, str, str]]:
    """(what, bytes, where) rows for a report."""
    rows = [("weights", f"{b.weights_bytes:,}", "flash (const data of the weights file)"),
            ("code", f"{b.code_bytes:,}", "flash (model + kernels, .text)"),
            ("flash total", f"{b.weights_bytes + b.code_bytes:,}", "flash"),
            ("arena", f"{arena_bytes:,}", "RAM (.bss, planned)")]
    if stack_bytes is not None and stack_bytes >= 0:
        rows.append(("stack (measured)", f"{stack_bytes:,}", "RAM (high-water mark in QEMU)"))
        rows.append(("RAM total", f"{arena_bytes + stack_bytes:,}", "RAM"))
    return rows
