"""The C target's tools and flags, stated once: the generated Makefile is rendered from these, and
the host and Cortex-M builds use them too."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

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
    # no FPU and no DSP extension: float in software, the int8 kernels' portable C path
    "cortex-m3": Mcu("cortex-m3", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"), "mps2-an385",
                     "Arm MPS2 AN385 (Cortex-M3)"),
    "cortex-m4": Mcu("cortex-m4", ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                     "mps2-an386", "Arm MPS2 AN386 (Cortex-M4F)"),
    "cortex-m7": Mcu("cortex-m7", ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                     "mps2-an500", "Arm MPS2 AN500 (Cortex-M7)"),
}
ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
ARM_NM = "arm-none-eabi-nm"
ARM_OBJDUMP = "arm-none-eabi-objdump"  # symbols and disassembly for the profile
QEMU = "qemu-system-arm"
INSNS_PER_TICK = 40  # CMSDK TIMER0 runs at 25 MHz; with -icount shift=0 one guest instruction is 1 ns

RUNTIME_HEADER = "archdsl_rt.h"

# Names a network's files cannot take: the harnesses' and the runtime's own files, and the C
# library's headers (the build passes -I., so a `stdio.h` of the network's would shadow the system's).
OWN_FILES = {"main", "archdsl_rt", "mcu_main", "startup", "semihost", "link"}
C_HEADERS = {"assert", "complex", "ctype", "errno", "fenv", "float", "inttypes", "iso646", "limits", "locale",
             "math", "setjmp", "signal", "stdalign", "stdarg", "stdatomic", "stdbool", "stddef", "stdint", "stdio",
             "stdlib", "stdnoreturn", "string", "tgmath", "threads", "time", "uchar", "wchar", "wctype"}


def file_base(name: str) -> str:
    """The base name of a network's files: `name`, or `name_net` when that would collide with a
    harness file or a C header, `net_name` when it would look like a runtime file (the build
    takes every rt_*.c as one, and `rt` would make rt_weights.c)."""
    if name == "rt" or name.startswith("rt_"):
        return "net_" + name
    if name in OWN_FILES or name.lower() in C_HEADERS:
        return name + "_net"
    return name


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


def templates() -> Path:
    """codegen_templates/c: the jinja templates, runtime/ (the hand-written kernels) and mcu/."""
    from ...resources import templates_dir

    return templates_dir() / "c"
