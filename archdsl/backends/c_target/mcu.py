"""Cortex-M: cross-compiling the model with the QEMU harness, running it under qemu-system-arm, and
the flash/RAM sizes."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ArchError
from .build import (_cache_root, _compile_object, _read_trace, _run_tool, as_program_input, model_sources,
                    read_dtype, read_input_quantization)
from .toolchain import (ARM_CC, ARM_SIZE, INSNS_PER_TICK, MCU_LDFLAGS, MCU_LIBS, MCU_OPT, MCUS, QEMU, WARN_FLAGS,
                        Mcu, mcu_unavailable)

# ---------------------------------------------------------------- Cortex-M

@dataclass
class McuBuild:
    mcu: Mcu
    elf: Path
    sizes: dict[str, dict[str, int]]  # object -> {text, data, bss}
    elf_size: dict[str, int]
    dtype: str = "<f4"  # the element type of input.bin / output.bin (build.INT8 for an int8 build)
    input_q: tuple[float, int] | None = None  # an int8 build's input (scale, zero point)

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
    return McuBuild(m, elf, sizes, elf_size, read_dtype(outdir, name), read_input_quantization(outdir, name))


@dataclass
class McuRun:
    output: np.ndarray
    ticks: list[int]
    stack_bytes: int
    log: str
    step_ticks: dict[str, int] = field(default_factory=dict)  # per step, with build_mcu(trace=True)
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # every step's output, run_mcu(layers=True)

    @property
    def instructions(self) -> list[int]:
        return [t * INSNS_PER_TICK for t in self.ticks]


def run_mcu(b: McuBuild, x: np.ndarray, out_size: int, timeout: float = 300,
            plugin: list[str] | None = None, layers: bool = False) -> McuRun:
    """Run the ELF under qemu-system-arm (semihosting, -icount shift=0) on a batch of inputs; `plugin`:
    extra QEMU arguments run in QEMU's working folder (the profile's `-plugin`, see profile.py);
    `layers` (an ELF of build_mcu(trace=True)): also every step's output, as build.run_layers."""
    with tempfile.TemporaryDirectory(prefix="archdsl-qemu-") as tmp:
        np.ascontiguousarray(as_program_input(x, b.dtype, b.input_q)).tofile(Path(tmp) / "input.bin")
        if layers:
            (Path(tmp) / "trace.req").write_bytes(b"")
        cmd = [QEMU, "-M", b.mcu.machine, "-display", "none", "-monitor", "none", "-serial", "none",
               "-icount", "shift=0", "-chardev", "file,id=sh0,path=console.txt",
               "-semihosting-config", "enable=on,target=native,chardev=sh0", "-kernel", str(b.elf), *(plugin or [])]
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
        out = np.fromfile(out_path, dtype=b.dtype) if out_path.exists() else np.zeros(0, b.dtype)
        trace_path = Path(tmp) / "trace.bin"
        traced = _read_trace(trace_path.read_bytes(), b.dtype) if layers and trace_path.exists() else {}
        if layers and not traced:
            raise ArchError("the MCU run wrote no trace", None, "build it with build_mcu(..., trace=True)")
    n = x.shape[0]
    if out.size != n * out_size:
        raise ArchError(f"the MCU run wrote {out.size} values, expected {n * out_size}", None, log[-2000:] or None)
    ticks = [int(v) for v in re.findall(r"^ticks=(\d+)", log, re.M)]
    stack = re.search(r"stack=(\d+)", log)
    steps: dict[str, int] = {}
    for name, t in re.findall(r"^step (\S+) ticks=(\d+)", log, re.M):
        steps.setdefault(name, int(t))  # the first image's
    return McuRun(out.reshape(n, out_size), ticks, int(stack.group(1)) if stack else -1, log, steps, traced)


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
