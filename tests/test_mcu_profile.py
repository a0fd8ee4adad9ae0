"""The Cortex-M profile (archdsl/backends/c_target/profile.py, codegen_templates/c/qemu/insnprofile.c):
the QEMU plugin's counts against independent counts (a hand-written loop whose instruction count is
known, and the harness's TIMER0 under -icount shift=0), per-layer rows against the whole run and the
analysis' mult-adds, and clear errors when a tool is missing."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from archdsl.analysis import analyze
from archdsl.backends import c_target
from archdsl.backends.c_target import profile
from archdsl.backends.c_target.build import _run_tool
from archdsl.cli import app
from archdsl.errors import ArchError
from archdsl.weights import init_weights

from conftest import ALL_OPS, SPECS, parse_text

needs_mcu = pytest.mark.skipif(c_target.mcu_unavailable() is not None or profile.profile_unavailable() is not None,
                               reason=str(c_target.mcu_unavailable() or profile.profile_unavailable()))


# 2 + 2 x 1000 + 1 instructions: movs, lsls, then 1000 x (subs, bne), then bx lr
LOOP = r"""
__asm__(".syntax unified\n.thumb\n.global tiny_invoke\n.thumb_func\n.type tiny_invoke, %function\n"
        "tiny_invoke:\n movs r0, #250\n lsls r0, r0, #2\n1: subs r0, r0, #1\n bne 1b\n bx lr\n"
        ".size tiny_invoke, .-tiny_invoke\n");
int tiny_invoke(void);
int main(void);
int main(void) { volatile int rc = tiny_invoke(); return rc; } /* volatile: a call, not a tail call */
"""


@needs_mcu
def test_plugin_counts_a_known_loop_exactly(tmp_path):
    (tmp_path / "loop.c").write_text(LOOP)
    mcu = c_target.MCUS["cortex-m4"]
    harness = c_target.templates() / "mcu"
    elf = tmp_path / "loop.elf"
    _run_tool([c_target.ARM_CC, *mcu.cpu_flags, "-O2", *c_target.MCU_LDFLAGS, "-T", str(harness / "link.ld"),
               str(harness / "startup.c"), str(harness / "semihost.c"), str(tmp_path / "loop.c"),
               *c_target.MCU_LIBS, "-o", str(elf)], "linking the loop")
    b = c_target.McuBuild(mcu, elf, {}, {})
    (window,), = profile.count_windows(b, np.zeros((0, 1), np.float32), 1, "tiny", trace=False)
    assert window.instructions == 2003
    assert window.classes == {"alu": 1002, "branch": 1001}
    assert window.cycles == 1002 * 1 + 1001 * 2  # the M4 costs of profile.CYCLES


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    g = parse_text(ALL_OPS)
    outdir = tmp_path_factory.mktemp("prof")
    c_target.compile(g, init_weights(g, 0), outdir, "net")
    x = np.random.default_rng(3).standard_normal((1, *g.input_shape.chw)).astype(np.float32)
    return g, outdir, x


@needs_mcu
@pytest.mark.parametrize("mcu", ["cortex-m4", "cortex-m7"])
def test_plugin_total_matches_timer_and_layers_add_up(small, mcu):
    g, outdir, x = small
    b = c_target.build_mcu(outdir, "net", mcu)
    timer = c_target.run_mcu(b, x, g.output_shape.numel).instructions[0]  # TIMER0 ticks x 40
    (whole,), = profile.count_windows(b, x, g.output_shape.numel, "net", trace=False)
    # the timer's resolution is 40 instructions, and it also counts its own reads and the call
    assert abs(whole.instructions - timer) <= 60, (whole.instructions, timer)
    assert sum(whole.classes.values()) == whole.instructions
    _, rows = profile.layer_profile(g, outdir, "net", mcu, x)
    steps = analyze(g).steps
    assert len(rows) == len(steps) + 1 and rows[-1].layer == "(return)"
    assert sum(r.macs for r in rows) == analyze(g).macs
    traced = sum(r.counts.instructions for r in rows)
    # the traced build adds the archdsl_trace call sequence (argument set-up and BL) per step, nothing more
    assert whole.instructions <= traced <= whole.instructions + 12 * len(steps), (traced, whole.instructions)
    biggest = max(rows, key=lambda r: r.macs)  # a conv: its mult-adds are floating-point multiply-adds
    assert biggest.counts.classes["fp_mac"] > biggest.macs // 2 and biggest.counts.cycles > biggest.counts.instructions


@needs_mcu
def test_layer_type_table_groups_the_rows(small):
    """The per-layer-type table: each step under its type (ALL_OPS's first conv reads the input),
    the types' rows adding up to the per-layer total."""
    g, outdir, x = small
    _, rows = profile.layer_profile(g, outdir, "net", "cortex-m4", x)
    kinds = [r.kind for r in rows]
    assert kinds.count("first conv") == 1 and "depthwise" in kinds and "1x1" in kinds and "fc" in kinds
    assert set(kinds) <= set(profile.LAYER_TYPES)
    _, body = profile.type_table(rows)
    total = body[-1]
    assert total[0] == "total" and total[3] == f"{sum(r.counts.instructions for r in rows):,}"
    assert sum(int(b[3].replace(",", "")) for b in body[:-1]) == sum(r.counts.instructions for r in rows)
    assert sum(int(b[2].replace(",", "")) for b in body[:-1]) == analyze(g).macs
    with pytest.raises(ArchError, match="no cycle table for cortex-m3"):
        profile.layer_profile(g, outdir, "net", "cortex-m3", x)


@needs_mcu
def test_run_profile_prints_the_table(small):
    r = CliRunner().invoke(app, ["run", str(SPECS / "mobilenet_v1.arch"), "--set", "alpha=0.25",
                                 "--set", "rho=32/224", "--set", "classes=2", "--mcu", "cortex-m4", "--profile"])
    assert r.exit_code == 0, r.output
    for text in ("per layer", "conv1", "est. cycles", "cycles/MAC", "total", "fp_mac", "leaves out", "per layer type",
                 "first conv", "depthwise"):
        assert text in r.output


def test_profile_errors_are_clear(monkeypatch):
    spec = str(SPECS / "mobilenet_v1.arch")
    r = CliRunner().invoke(app, ["run", spec, "--profile"])
    assert r.exit_code == 1 and "--profile needs --mcu" in r.output and "Traceback" not in r.output
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if "arm" in name else which(name, *a, **k))
    r = CliRunner().invoke(app, ["run", spec, "--set", "alpha=0.25", "--set", "rho=32/224", "--mcu", "cortex-m4",
                                 "--profile"])
    assert r.exit_code == 1 and "qemu-system-arm not found" in r.output and "Traceback" not in r.output
    monkeypatch.setattr(profile, "host_cc", lambda: None)
    with pytest.raises(ArchError, match="host C compiler"):
        profile.build_plugin()
