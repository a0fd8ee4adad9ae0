"""Per-layer Cortex-M profile: executed instructions per instruction class in every step, counted by
the project's QEMU TCG plugin (codegen_templates/c/qemu/insnprofile.c), and estimated cycles from
the Cortex-M4 / M7 cycle table below.

How it counts: the model is built with -DARCHDSL_TRACE, so the harness's archdsl_trace() runs after
every step. The plugin counts executions per guest address from the entry of <p>_invoke to its return
site in main, starts a new window at each entry of archdsl_trace, and does not count the tracing code
itself (archdsl_trace and the semihosting functions sh_*). The call of archdsl_trace at the end of a
step (a few instructions) is counted in that step. Addresses are classified with
arm-none-eabi-objdump's disassembly of the same ELF.

The estimate leaves out: flash wait states and the flash accelerator/cache (zero-wait-state memory is
assumed, as on QEMU's boards), the M7's caches and TCM (every access is taken as a hit), the M7's
dual issue (an M7 can retire up to two instructions per cycle, so its estimate can be up to 2x high),
branch prediction and whether a branch was taken (each branch is charged a fixed cost), load-use and
other pipeline interlocks, and the data dependence of division.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ArchError
from .build import _cache_root, _run_tool
from .mcu import McuBuild, run_mcu
from .toolchain import ARM_NM, ARM_OBJDUMP, host_cc, templates

# ---------------------------------------------------------------- the cycle table
# class -> (Cortex-M4 cycles, M7 cycles, what). A cost is (fixed, per 32-bit register moved): the
# multiple-register transfers (LDM/STM/PUSH/POP/LDRD/STRD/VLDM/VSTM/VPUSH/VPOP) cost fixed + per x N.
# Cortex-M4: Arm Cortex-M4 TRM (DDI 0439 / 100166), table 3-1 "processor instruction set summary" and
# the FPU instruction table (zero wait states). P, the pipeline refill of a taken branch, is 1-3: a
# branch is charged 1 + 1 = 2 (1 if it falls through, up to 4 if taken). SDIV/UDIV take 2-12 cycles
# depending on the operands: charged 7. LDR/STR are 2 (1 when pipelined with a neighbouring access).
# Cortex-M7: Arm Cortex-M7 TRM (DDI 0489) and its processor description: single-issue throughput with
# every memory access hitting TCM or cache and every branch predicted; VDIV/VSQRT.F32 14.
CYCLES: dict[str, tuple[tuple[int, int], tuple[int, int], str]] = {
    "alu": ((1, 0), (1, 0), "data processing, moves, shifts, compares, extends, IT"),
    "mac_simd": ((1, 0), (1, 0), "integer multiply / multiply-accumulate, DSP SIMD (SMLAD, SXTB16, ...)"),
    "divide": ((7, 0), (7, 0), "SDIV, UDIV (2-12 cycles, data dependent)"),
    "load": ((2, 0), (1, 0), "LDR, LDRB, LDRH, LDRSB, ..."),
    "store": ((2, 0), (1, 0), "STR, STRB, STRH"),
    "load_multiple": ((1, 1), (0, 1), "LDM, POP, LDRD (N registers)"),
    "store_multiple": ((1, 1), (0, 1), "STM, PUSH, STRD (N registers)"),
    "branch": ((2, 0), (1, 0), "B, BL, BX, BLX, CBZ, CBNZ, TBB, TBH"),
    "fp": ((1, 0), (1, 0), "VADD, VSUB, VMUL, VMOV, VCVT, VCMP, VMRS, VABS, VNEG, VMAXNM"),
    "fp_mac": ((3, 0), (1, 0), "VMLA, VMLS, VFMA, VFMS, VNMLA, ..."),
    "fp_div": ((14, 0), (14, 0), "VDIV, VSQRT (single precision)"),
    "fp_load": ((2, 0), (1, 0), "VLDR"),
    "fp_store": ((2, 0), (1, 0), "VSTR"),
    "fp_load_multiple": ((1, 1), (0, 1), "VLDM, VPOP (N words)"),
    "fp_store_multiple": ((1, 1), (0, 1), "VSTM, VPUSH (N words)"),
}
MCU_COLUMN = {"cortex-m4": 0, "cortex-m7": 1}
LEFT_OUT = ("flash wait states and caches (zero-wait-state memory assumed; M7: every access hits), "
            "M7 dual issue (its estimate can be up to 2x high), branch prediction and taken/not-taken "
            "(fixed cost per branch), pipeline interlocks, data-dependent division")

_CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
_BRANCHES = {"b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh"}
_MULS = ("mul", "mla", "mls", "smul", "smla", "smls", "smmu", "smml", "smua", "smus", "umul", "umla", "umaal",
         "usad", "sxtb16", "sxtab16", "uxtb16", "uxtab16", "sadd16", "ssub16", "sadd8", "ssub8", "qadd", "qsub",
         "shadd", "uadd", "usub", "sasx", "ssax", "pkh", "sel", "ssat16", "usat16")


def classify(mnemonic: str, operands: str) -> tuple[str, int]:
    """(class, 32-bit registers moved) of one disassembled instruction (objdump's mnemonic)."""
    m = mnemonic.lower().split(".")[0]
    if m in _BRANCHES or (m[:1] == "b" and m[1:] in _CONDS) or (m in ("pop", "ldm", "ldmia") and "pc" in operands):
        return "branch", 0
    if m.startswith("v"):
        if m.startswith(("vdiv", "vsqrt")):
            return "fp_div", 0
        if m.startswith(("vmla", "vmls", "vfma", "vfms", "vnmla", "vnmls", "vfnma", "vfnms")):
            return "fp_mac", 0
        if m.startswith(("vldm", "vpop", "vstm", "vpush")):
            kind = "fp_load_multiple" if m.startswith(("vldm", "vpop")) else "fp_store_multiple"
            return kind, _register_words(operands)
        if m.startswith("vldr"):
            return "fp_load", 0
        if m.startswith("vstr"):
            return "fp_store", 0
        return "fp", 0
    if m.startswith(("sdiv", "udiv")):
        return "divide", 0
    if m.startswith(_MULS):
        return "mac_simd", 0
    if m.startswith(("ldrd", "strd")):
        return ("load_multiple" if m.startswith("ldrd") else "store_multiple"), 2
    if m.startswith(("ldm", "pop")):
        return "load_multiple", _register_words(operands)
    if m.startswith(("stm", "push")):
        return "store_multiple", _register_words(operands)
    if m.startswith("ldr") or m in ("ldrex", "lda"):
        return "load", 0
    if m.startswith("str"):
        return "store", 0
    return "alu", 0


def _register_words(operands: str) -> int:
    """32-bit words moved by a register list such as {r4, r5, lr}, {s16-s31} or {d8-d15}."""
    inside = operands[operands.find("{") + 1:operands.find("}")] if "{" in operands else ""
    words = 0
    for part in filter(None, (p.strip() for p in inside.split(","))):
        lo, _, hi = part.partition("-")
        per = 2 if lo.startswith("d") else 1
        if hi:
            words += per * (int(hi[1:]) - int(lo[1:]) + 1)
        else:
            words += per
    return max(words, 1)


def cycles_of(cls: str, words: int, mcu: str) -> int:
    fixed, per = CYCLES[cls][MCU_COLUMN[mcu]]
    return fixed + per * words


# ---------------------------------------------------------------- the plugin and the ELF

def profile_unavailable() -> str | None:
    import shutil

    if host_cc() is None:
        return "the QEMU profile plugin is built with the host C compiler, and none was found (gcc, cc or clang)"
    missing = [t for t in (ARM_NM, ARM_OBJDUMP) if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install --no-install-recommends binutils-arm-none-eabi)"
    return None


def build_plugin() -> Path:
    """libinsnprofile.so, built with the host C compiler from codegen_templates/c/qemu/ (cached by source)."""
    why = profile_unavailable()
    if why:
        raise ArchError("the per-layer profile cannot be built", None, why)
    src = templates() / "qemu" / "insnprofile.c"
    cc = host_cc()
    flags = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC"]
    h = hashlib.sha256("\0".join([cc, *flags]).encode() + src.read_bytes()).hexdigest()[:24]
    so = _cache_root() / "plugin" / f"libinsnprofile-{h}.so"
    if not so.exists():
        so.parent.mkdir(parents=True, exist_ok=True)
        tmp = so.with_name(so.name + f".{os.getpid()}.tmp")
        _run_tool([cc, *flags, str(src), "-o", str(tmp)], "building the QEMU profile plugin")
        os.replace(tmp, so)
    return so


@dataclass
class Disassembly:
    insns: dict[int, tuple[str, int]]  # address -> (class, registers moved)
    symbols: dict[str, tuple[int, int]]  # function -> (address, size)
    order: list[int]  # instruction addresses, ascending
    calls: dict[int, str]  # address of a BL -> the function it calls


_INSN = re.compile(r"^\s*([0-9a-f]+):\t[0-9a-f ]+\t(\S+)(?:\s+(.*))?$")


def disassemble(elf: Path) -> Disassembly:
    text = _run_tool([ARM_OBJDUMP, "-d", str(elf)], "arm-none-eabi-objdump")
    insns: dict[int, tuple[str, int]] = {}
    calls: dict[int, str] = {}
    for line in text.splitlines():
        m = _INSN.match(line)
        if m:
            addr, mnem, ops = int(m.group(1), 16), m.group(2), m.group(3) or ""
            insns[addr] = classify(mnem, ops)
            target = re.search(r"<([^>+]+)>", ops)
            if mnem.split(".")[0] == "bl" and target:
                calls[addr] = target.group(1)
    symbols = {}
    for line in _run_tool([ARM_NM, "-S", "--defined-only", str(elf)], "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            symbols[parts[3]] = (int(parts[0], 16) & ~1, int(parts[1], 16))
    return Disassembly(insns, symbols, sorted(insns), calls)


def _return_site(d: Disassembly, callee: str) -> int:
    sites = [a for a, t in d.calls.items() if t == callee]
    if len(sites) != 1:
        raise ArchError(f"the profile expects one call of {callee} in the harness, found {len(sites)}")
    i = d.order.index(sites[0])
    return d.order[i + 1]


# ---------------------------------------------------------------- running

@dataclass
class StepProfile:
    classes: Counter  # class -> instructions
    instructions: int
    cycles: int
    class_cycles: Counter = field(default_factory=Counter)  # class -> estimated cycles


def count_windows(b: McuBuild, x: np.ndarray, out_size: int, name: str, trace: bool) -> list[list[StepProfile]]:
    """Run the ELF once under the plugin; per image, the windows (one per step when built with trace,
    else one for the whole invoke), each with its instructions per class and estimated cycles."""
    so = build_plugin()
    d = disassemble(b.elf)
    invoke = f"{name}_invoke"
    if invoke not in d.symbols:
        raise ArchError(f"{invoke} not found in {b.elf.name}")
    args = [f"begin={d.symbols[invoke][0]:#x}", f"end={_return_site(d, invoke):#x}"]
    if trace:
        if "archdsl_trace" not in d.symbols:
            raise ArchError("the profile needs a build with -DARCHDSL_TRACE (archdsl_trace not found)")
        args.append(f"step={d.symbols['archdsl_trace'][0]:#x}")
        for fn, (lo, size) in d.symbols.items():
            if fn == "archdsl_trace" or fn.startswith("sh_"):
                args.append(f"skip={lo:#x}:{lo + size:#x}")
    with tempfile.TemporaryDirectory(prefix="archdsl-profile-") as tmp:
        out = Path(tmp) / "counts.txt"
        run_mcu(b, x, out_size, plugin=["-plugin", ",".join([str(so), *args, f"out={out}"])])
        text = out.read_text() if out.exists() else ""
    images: list[list[StepProfile]] = []
    cur: StepProfile | None = None
    for line in text.splitlines():
        first, second = line.split()[-2:]
        if line.startswith("w "):  # "w IMAGE WINDOW"
            while len(images) <= int(first):
                images.append([])
            cur = StepProfile(Counter(), 0, 0)
            images[int(first)].append(cur)
            continue
        addr, n = int(first, 16), int(second)  # "ADDR COUNT"
        cls, words = d.insns.get(addr, ("alu", 0))
        cur.classes[cls] += n
        cur.instructions += n
        c = n * cycles_of(cls, words, b.mcu.name)
        cur.cycles += c
        cur.class_cycles[cls] += c
    if not images:
        raise ArchError("the profile plugin recorded no run of the model", None, str(so))
    return images


@dataclass
class LayerRow:
    layer: str  # the step's main node
    line: int | None  # its spec line
    macs: int
    counts: StepProfile
    kind: str = ""  # layer_type: the row of the per-type table


LAYER_TYPES = ("first conv", "depthwise", "1x1", "conv", "fc", "pool", "other")


def layer_type(step, graph_input: str) -> str:
    """The layer type of a step, as CMSIS-NN's per-layer figures group them: a convolution reading
    the network's input, depthwise, pointwise (1x1), any other convolution, fully connected, pool."""
    n = step.main
    if n.op.name in ("conv", "conv dw"):
        a, x = n.attrs, n.in_shapes[0]
        if graph_input in n.inputs:
            return "first conv"
        if a.groups == x.c > 1:
            return "depthwise"
        return "1x1" if tuple(a.kernel) == (1, 1) else "conv"
    if n.op.name == "fc":
        return "fc"
    return "pool" if "pool" in n.op.name else "other"


def layer_profile(graph, outdir: Path, name: str, mcu: str, x: np.ndarray,
                  opt: list[str] | None = None) -> tuple[McuBuild, list[LayerRow]]:
    """The per-step profile of the first image of `x`: the model built with -DARCHDSL_TRACE for `mcu`,
    one row per step in call order, plus a last row for invoke's return (no spec line)."""
    from ...analysis import analyze
    from .mcu import build_mcu

    if mcu not in MCU_COLUMN:
        raise ArchError(f"the profile has no cycle table for {mcu}", None,
                        f"profile one of {', '.join(MCU_COLUMN)}; run without --profile for the instruction count")
    b = build_mcu(outdir, name, mcu, opt=opt, trace=True)
    windows = count_windows(b, x[:1], graph.output_shape.numel, name, trace=True)[0]
    steps = analyze(graph).steps  # the C target makes one call, and one TRACE, per step in this order
    if len(windows) != len(steps) + 1:
        raise ArchError(f"the profile saw {len(windows) - 1} steps, the model has {len(steps)}")
    rows = []
    for s, counts in zip(steps, windows):
        rows.append(LayerRow(s.main.name, s.main.row.line, sum(n.macs for n in s.nodes), counts,
                             layer_type(s, graph.input_name)))
    rows.append(LayerRow("(return)", None, 0, windows[-1], "other"))
    return b, rows


def profile_table(rows: list[LayerRow]) -> tuple[list[str], list[list[str]]]:
    """(header, rows incl. the total) of the per-layer table that `run --profile` and the bench print."""
    head = ["layer", "line", "mult-adds", "instructions", "est. cycles", "insns/MAC", "cycles/MAC"]

    def row(label, line, macs, insns, cycles):
        per = (lambda n: f"{n / macs:.2f}") if macs else (lambda n: "")
        return [label, "" if line is None else str(line), f"{macs:,}", f"{insns:,}", f"{cycles:,}",
                per(insns), per(cycles)]

    out = [row(r.layer, r.line, r.macs, r.counts.instructions, r.counts.cycles) for r in rows]
    out.append(row("total", None, sum(r.macs for r in rows), sum(r.counts.instructions for r in rows),
                   sum(r.counts.cycles for r in rows)))
    return head, out


def type_table(rows: list[LayerRow]) -> tuple[list[str], list[list[str]]]:
    """(header, rows incl. the total) of instructions and estimated cycles per layer type."""
    head = ["layer type", "layers", "mult-adds", "instructions", "est. cycles", "insns/MAC", "cycles/MAC"]
    out = []
    for kind in LAYER_TYPES:
        group = [r for r in rows if r.kind == kind]
        if not group:
            continue
        macs = sum(r.macs for r in group)
        insns, cycles = sum(r.counts.instructions for r in group), sum(r.counts.cycles for r in group)
        per = (lambda v: f"{v / macs:.2f}") if macs else (lambda v: "")
        layers = sum(1 for r in group if r.line is not None)
        out.append([kind, str(layers), f"{macs:,}", f"{insns:,}", f"{cycles:,}", per(insns), per(cycles)])
    macs = sum(r.macs for r in rows)
    insns, cycles = sum(r.counts.instructions for r in rows), sum(r.counts.cycles for r in rows)
    out.append(["total", str(sum(1 for r in rows if r.line is not None)), f"{macs:,}", f"{insns:,}", f"{cycles:,}",
                f"{insns / macs:.2f}" if macs else "", f"{cycles / macs:.2f}" if macs else ""])
    return head, out


def class_table(rows: list[LayerRow], mcu: str) -> tuple[list[str], list[list[str]]]:
    """Instructions and estimated cycles per instruction class over all layers, with the table's costs."""
    insns: Counter = Counter()
    cycles: Counter = Counter()
    for r in rows:
        insns.update(r.counts.classes)
        cycles.update(r.counts.class_cycles)
    total = sum(insns.values()) or 1
    head = ["class", "instructions", "share", "cycles each", "est. cycles", "what"]
    out = []
    for cls, (m4, m7, what) in CYCLES.items():
        fixed, per = (m4, m7)[MCU_COLUMN[mcu]]
        cost = f"{fixed} + {per}N" if per else f"{fixed}"
        if insns[cls]:
            out.append([cls, f"{insns[cls]:,}", f"{insns[cls] / total:.1%}", cost, f"{cycles[cls]:,}", what])
    return head, out
