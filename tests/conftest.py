"""Shared test helpers: where specs and the shared models live, and a graph loader."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MODELS = ROOT.parent / "shared" / "models"  # MLPerf Tiny models, present in CI; never copied here
ALL_OPS_SPEC = ROOT / "tests" / "specs" / "all_ops.arch"  # every op of the registry; every backend suite runs it
ALL_OPS = ALL_OPS_SPEC.read_text(encoding="utf-8")


def all_specs() -> list[Path]:
    return sorted(SPECS.glob("*.arch"))


def load_graph(spec: str | Path, **sets):
    from archdsl.elaborate import elaborate
    from archdsl.syntax import parse

    path = Path(spec)
    if not path.is_absolute() and not path.exists():
        path = SPECS / path
    return elaborate(parse(path.read_text(encoding="utf-8"), str(path)), sets)


def small_graph(spec):
    """The spec at a reduced size for cross-backend tests: α = 0.25 and the smallest ρ that still
    elaborates (some networks stop fitting their pooling windows below a resolution)."""
    from archdsl.errors import ArchError

    params = load_graph(spec).params
    sets = {"alpha": 0.25} if "alpha" in params else {}
    if "rho" not in params:
        return load_graph(spec, **sets)
    for rho in (0.25, 0.5, 0.75, 1.0):
        try:
            return load_graph(spec, **sets, rho=rho)
        except ArchError:
            continue
    raise AssertionError(f"{Path(spec).name} does not elaborate at alpha=0.25 for any rho <= 1")


def assert_no_overlap(plan):
    """No two buffers of a memory plan that are alive at the same step share a byte."""
    for a in plan.buffers:
        assert a.offset % 16 == 0
        for b in plan.buffers:
            if a.index < b.index and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    assert plan.arena_bytes >= plan.peak_live_bytes


def parse_text(text: str, **sets):
    from archdsl.elaborate import elaborate
    from archdsl.syntax import parse

    return elaborate(parse(text, "test.arch"), sets)


@pytest.fixture
def models_dir() -> Path:
    if not MODELS.is_dir():
        pytest.skip(f"the shared MLPerf Tiny models are not at {MODELS}")
    return MODELS


# The C kernels' instruction-set builds: the portable path (no -march, or -DARCH_PORTABLE), and the
# explicit-SIMD paths (AVX2 + FMA, and whatever this CPU has: AVX-512 where present).
C_BUILDS = {
    "portable": [],
    "portable-native": ["-march=native", "-DARCH_PORTABLE"],
    "avx2": ["-march=x86-64-v3"],
    "native": ["-march=native"],
}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def c_build_skip(build: str) -> str | None:
    """Why the C build `build` (a key of C_BUILDS) cannot run on this machine; None if it can."""
    import subprocess

    from archdsl.backends import c_target

    cc = c_target.host_cc()
    if cc is None:
        return "no C compiler"
    if not C_BUILDS[build]:
        return None
    probe = subprocess.run([cc, *C_BUILDS[build], "-E", "-x", "c", "/dev/null"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"{cc} does not take {' '.join(C_BUILDS[build])}"
    if build == "avx2" and not {"avx2", "fma"} <= _cpu_flags():
        return "this CPU has no AVX2 + FMA"
    return None

