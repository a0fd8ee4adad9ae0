"""Building and running on the host: the written sources compiled with the host compiler, each
object cached by content, and the program run on a batch."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import ArchError
from ..common import check_batch
from .toolchain import HOST_OPT, SANITIZE_FLAGS, WARN_FLAGS, file_base, host_cc, unavailable

# ---------------------------------------------------------------- building

def model_sources(outdir: Path, name: str) -> list[Path]:
    """The model's own C files (not the harnesses), in a fixed order."""
    outdir, name = Path(outdir), file_base(name)
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
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        first = next((line.strip() for line in lines if "error" in line.lower()), lines[0].strip() if lines else "")
        raise ArchError(f"{what} failed (exit {proc.returncode})" + (f": {first}" if first else ""), None,
                        "the compiler said:\n" + "\n".join(lines[:30]) if lines else None)
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
    _run_tool([cc, *flags, *[f"-I{i}" for i in includes], "-c", src.name, "-o", str(tmp)], f"compiling {src.name}",
              cwd=src.parent)
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
            trace: dict | None = None, dtype: str = "<f4") -> np.ndarray:
    """Run a host program built by `build` on a batch; with `trace` (a dict), also collect every
    step's output (the program must be built with -DARCHDSL_TRACE): name -> (N, C, H, W).
    dtype: the program's element type ("<f4", or INT8 for an int8 build)."""
    with tempfile.TemporaryDirectory(prefix="archdsl-run-") as tmp:
        fin, fout, ftrace = Path(tmp) / "input.npy", Path(tmp) / "output.bin", Path(tmp) / "trace.bin"
        # .npy, whose header states the type and shape: the program checks them exactly, and any
        # value (NaN included) goes through, where a raw file's values are checked for float64
        np.save(fin, np.ascontiguousarray(inputs, dtype=dtype))  # (N, C, H, W)
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
        out = np.fromfile(fout, dtype=dtype)
        if trace is not None:
            trace.update(_read_trace(ftrace.read_bytes(), dtype))
    n = inputs.shape[0]
    if out.size != n * out_size:
        raise ArchError(f"the C program wrote {out.size} values, expected {n * out_size}")
    return out.reshape(n, out_size)


def _read_trace(data: bytes, dtype: str = "<f4") -> dict[str, np.ndarray]:
    per_name: dict[str, list[np.ndarray]] = {}
    pos = 0
    while pos < len(data):
        (n,) = np.frombuffer(data, np.int32, 1, pos)
        pos += 4
        name = data[pos:pos + n].decode()
        pos += n
        c, h, w = (int(v) for v in np.frombuffer(data, np.int32, 3, pos))
        pos += 12
        per_name.setdefault(name, []).append(np.frombuffer(data, dtype, c * h * w, pos).reshape(c, h, w))
        pos += np.dtype(dtype).itemsize * c * h * w
    return {k: np.stack(v) for k, v in per_name.items()}


def as_program_input(x, dtype: str, input_q: tuple[float, int] | None) -> np.ndarray:
    """x in the program's element type; an int8 build's float input is quantized with its input's
    (scale, zero point), as TFLite's QUANTIZE op does."""
    if dtype == INT8 and np.asarray(x).dtype != np.int8:
        from ...quant.arithmetic import quantize_float

        x = quantize_float(x, *input_q)
    return np.asarray(x, dtype=dtype)


INT8 = "i1"  # the element dtype of an int8 build's input, output and trace files


def read_dtype(outdir, name: str) -> str:
    """The element type of the generated program's input and output: "<f4", or INT8 for an int8 build."""
    path = Path(outdir) / f"{name}.h"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return INT8 if re.search(r"^#define \w+_INT8 1$", text, re.M) else "<f4"


def read_input_quantization(outdir, name: str) -> tuple[float, int] | None:
    """An int8 build's input (scale, zero point), from the generated header."""
    path = Path(outdir) / f"{name}.h"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    scale = re.search(r"^#define \w+_INPUT_SCALE ([0-9.e+-]+)f$", text, re.M)
    zp = re.search(r"^#define \w+_INPUT_ZERO_POINT (-?\d+)$", text, re.M)
    return (float(scale.group(1)), int(zp.group(1))) if scale and zp else None


def read_shapes(outdir, name: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(input CHW, output CHW) from the generated header, so `run` needs only the folder."""
    path = Path(outdir) / f"{file_base(name)}.h"
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
    """Build (host compiler, cached) and run the generated C on an NCHW batch; returns (N, C, H, W).
    An int8 build returns int8 and takes int8, or float quantized with the input's parameters."""
    in_chw, out_chw = read_shapes(outdir, name)
    dtype = read_dtype(outdir, name)
    xb = check_batch(as_program_input(x, dtype, read_input_quantization(outdir, name)), in_chw, dtype=dtype)
    exe = build(outdir, name, sanitize=sanitize)
    out = run_exe(exe, xb, int(np.prod(out_chw)), dtype=dtype)
    return out.reshape(xb.shape[0], *out_chw)


def run_layers(outdir, name, x) -> dict[str, np.ndarray]:
    """Every fused step's output, by the name of its last node (e.g. 'conv3.relu'): (N, C, H, W)."""
    in_chw, out_chw = read_shapes(outdir, name)
    dtype = read_dtype(outdir, name)
    xb = check_batch(as_program_input(x, dtype, read_input_quantization(outdir, name)), in_chw, dtype=dtype)
    exe = build(outdir, name, cflags=[*HOST_OPT, "-DARCHDSL_TRACE"])
    layers: dict[str, np.ndarray] = {}
    run_exe(exe, xb, int(np.prod(out_chw)), trace=layers, dtype=dtype)
    return layers
