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

The package, by concern: toolchain.py (flags, compilers, boards), lowering.py (the table of
lowerings and what they write into), layout.py (the weight layouts the kernels read, packed before
emission), generate.py (the files), build.py (host build cache and
runs), mcu.py (Cortex-M builds and QEMU runs). This module is the target's interface
(archdsl.backends).
"""
from __future__ import annotations

from .build import build, read_shapes, run, run_exe, run_layers
from .generate import compile, generate, runtime_files, runtime_text
from .lowering import ACTIVATIONS, LOWERINGS, Emitter, c_ident
from .mcu import McuBuild, McuRun, build_mcu, run_mcu, size_table
from .toolchain import (ARM_CC, ARM_SIZE, HOST_OPT, INSNS_PER_TICK, MCU_LDFLAGS, MCU_LIBS, MCU_OPT, MCUS, QEMU,
                        RUNTIME_HEADER, SANITIZE_FLAGS, WARN_FLAGS, Mcu, host_cc, mcu_unavailable, templates,
                        unavailable)

NAME = "c"
EXTRA = None
INT8 = True  # int8 weight dicts compile to an int8 runtime (lowering_int8.py, runtime/rt_q*.c)
