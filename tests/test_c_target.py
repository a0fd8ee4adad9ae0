"""The C target end to end: generated C for every spec compiles warning-free (-std=c99 -Wall -Wextra
-Werror -pedantic) and matches the NumPy reference (archdsl.backends.numpy_target.reference_forward,
float64, unfused), layer by layer; the same under -fsanitize=address,undefined.

Tolerance (the one `archdsl verify` uses, docs/targets.md): per compared tensor `ref`,
|c - ref| <= atol + 1e-3 * |ref| with atol = 1e-4 * max|ref| + 1e-5. The C code computes in float32
with BatchNorm folded, so it differs from the float64 reference by rounding only. Per layer, the
scale in atol is the largest of the step's output and inputs: a float32 error is relative to the
magnitudes a step reads (an SE gate's hsigmoid maps inputs of size ~100 to [0, 1], and near the
clamp it passes their rounding on), so an output-only scale would be stricter than float32 allows.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import archdsl.ops as ops
from archdsl.analysis.memory import plan_memory
from archdsl.analysis.schedule import schedule
from archdsl.backends import c_target
from archdsl.backends.numpy_target import reference_forward
from archdsl.commands.verify import compare
from archdsl.errors import ArchError
from archdsl.weights import fold_bn, init_weights

from conftest import ALL_OPS, C_BUILDS, all_specs, c_build_skip, load_graph, parse_text

needs_cc = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")

# ALL_OPS: tests/specs/all_ops.arch, the spec every backend suite runs (conftest.ALL_OPS).




def reduced(spec) -> dict:
    """--set values that keep a spec's test fast: α = 0.25, inputs near 56-120 pixels, 10 classes."""
    params = load_graph(spec).params
    sets = {}
    if "alpha" in params:
        sets["alpha"] = 0.25
    if "classes" in params:
        sets["classes"] = 10
    if "rho" in params:
        h = load_graph(spec).input_shape.h
        if h > 64:
            sets["rho"] = 0.25 if "vgg" in spec.name else (0.5 if h <= 224 else 0.4)
    return sets


def batch(graph, n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *graph.input_shape.chw)).astype(np.float32)


def check_layers(graph, layers, ref_layers, what):
    """Every step output the C code exposed, against the reference: the first miss is named."""
    checked = 0
    steps = schedule(graph)
    for step in steps:
        name = step.output
        assert name in layers, f"{what}: step {name} was not traced"
        ref = ref_layers[name].astype(np.float64)
        scale = max([float(np.abs(ref).max())] + [float(np.abs(ref_layers.get(t, np.zeros(1))).max())
                                                  for t in step.inputs if t != graph.input_name])
        atol = 1e-4 * scale + 1e-5
        diff = np.abs(layers[name].reshape(ref.shape) - ref)
        excess = diff - (atol + 1e-3 * np.abs(ref))
        assert np.all(excess <= 0), (
            f"{what}: layer {name} ({step.main.op.name}) differs from the reference: max abs diff "
            f"{diff.max():.3g}, tolerance {atol:.3g} + 1e-3*|ref|, at {np.unravel_index(np.argmax(excess), ref.shape)}")
        checked += 1
    assert checked == len(steps)


# ---------------------------------------------------------------- against the reference

@needs_cc
def test_all_ops_match_reference_layer_by_layer(tmp_path):
    g = parse_text(ALL_OPS)
    w = init_weights(g, 1)
    x = batch(g, 3)
    ref, ref_layers = reference_forward(g, w, x, keep=True)
    c_target.compile(g, w, tmp_path, "allops")
    check_layers(g, c_target.run_layers(tmp_path, "allops", x), ref_layers, "allops")
    out = c_target.run(tmp_path, "allops", x)
    assert out.shape == ref.shape
    assert compare(out, ref).ok


@needs_cc
def test_all_ops_sanitized(tmp_path):
    g = parse_text(ALL_OPS)
    w = init_weights(g, 2)
    x = batch(g, 2)
    ref, _ = reference_forward(g, w, x)
    c_target.compile(g, w, tmp_path, "allops")
    c = compare(c_target.run(tmp_path, "allops", x, sanitize=True), ref)
    assert c.ok, f"max abs diff {c.max_abs:.3g}"


@needs_cc
@pytest.mark.parametrize("spec", all_specs(), ids=lambda p: p.stem)
def test_spec_matches_reference(spec, tmp_path):
    g = load_graph(spec, **reduced(spec))
    w = init_weights(g, 0)
    x = batch(g)
    ref, ref_layers = reference_forward(g, w, x, keep=True)
    c_target.compile(g, w, tmp_path, g.name)
    check_layers(g, c_target.run_layers(tmp_path, g.name, x), ref_layers, spec.name)
    c = compare(c_target.run(tmp_path, g.name, x), ref)
    assert c.ok, f"{spec.name}: output max abs diff {c.max_abs:.3g}"


@needs_cc
@pytest.mark.parametrize("spec", all_specs(), ids=lambda p: p.stem)
def test_spec_sanitized(spec, tmp_path):
    """-fsanitize=address,undefined: any out-of-bounds access or UB aborts the program (the run fails)."""
    g = load_graph(spec, **reduced(spec))
    w = init_weights(g, 0)
    x = batch(g, 1, seed=1)
    ref, _ = reference_forward(g, w, x)
    c_target.compile(g, w, tmp_path, g.name)
    c = compare(c_target.run(tmp_path, g.name, x, sanitize=True), ref)
    assert c.ok, f"{spec.name}: output max abs diff {c.max_abs:.3g}"


FAST_BUILDS = ["avx2", "native"]


@needs_cc
@pytest.mark.parametrize("build", FAST_BUILDS)
@pytest.mark.parametrize("sanitize", [False, True], ids=["O2", "sanitized"])
def test_fast_path_matches_portable_and_reference(build, sanitize, tmp_path):
    """The explicit-SIMD kernels (-march=x86-64-v3: AVX2 + FMA; -march=native: AVX-512 where the CPU has
    it) against the portable path built from the same files and against the float64 reference, on the
    network that uses every op and on MobileNetV1 0.25 at 112 (stride-2 depthwise, 7x7 maps); also under
    -fsanitize=address,undefined."""
    why = c_build_skip(build)
    if why:
        pytest.skip(why)
    for name, g in (("allops", parse_text(ALL_OPS)), ("mnet", load_graph("mobilenet_v1.arch", alpha=0.25, rho=0.5,
                                                                              classes=10))):
        w = init_weights(g, 4)
        x = batch(g, 2, seed=5)
        ref, _ = reference_forward(g, w, x)
        c_target.compile(g, w, tmp_path / name, name)
        opt = c_target.SANITIZE_FLAGS if sanitize else c_target.HOST_OPT
        fast = c_target.build(tmp_path / name, name, cflags=[*opt, *C_BUILDS[build]], exe=tmp_path / f"{name}_fast")
        portable = c_target.build(tmp_path / name, name, cflags=[*opt, *C_BUILDS[build], "-DARCH_PORTABLE"],
                                  exe=tmp_path / f"{name}_portable")
        n = g.output_shape.numel
        out_fast, out_portable = c_target.run_exe(fast, x, n), c_target.run_exe(portable, x, n)
        c = compare(out_fast.reshape(ref.shape), ref)
        assert c.ok, f"{name} ({build}): max abs diff to the reference {c.max_abs:.3g}"
        c = compare(out_fast.reshape(ref.shape), out_portable.reshape(ref.shape).astype(np.float64))
        assert c.ok, f"{name} ({build}): max abs diff to the portable path {c.max_abs:.3g}"


@needs_cc
@pytest.mark.slow
def test_mobilenet_v1_full_size(tmp_path):
    """MobileNetV1 1.0 / 224 / 1000 classes, 4.2 M weights: once, on one image; the logits are compared
    (the softmax of random weights saturates) and the output too."""
    g = load_graph("mobilenet_v1.arch")
    w = init_weights(g, 0)
    x = batch(g, 1)
    ref, ref_layers = reference_forward(g, w, x, keep=True)
    c_target.compile(g, w, tmp_path, "mobilenet_v1")
    layers = c_target.run_layers(tmp_path, "mobilenet_v1", x)
    check_layers(g, layers, ref_layers, "mobilenet_v1 1.0/224")
    assert compare(layers[g.output], ref).ok


# ---------------------------------------------------------------- the generated files

def _vww():
    return load_graph("mobilenet_v1.arch", alpha=0.25, rho=96 / 224, classes=2)


def test_deterministic_and_free_of_paths(tmp_path):
    g = _vww()
    w = init_weights(g, 0)
    a = c_target.compile(g, w, tmp_path / "a", "net")
    b = c_target.compile(g, w, tmp_path / "b", "net")
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), f"{pa.name} differs between two runs"
        text = pa.read_text()
        assert str(tmp_path) not in text and "/work/" not in text, f"{pa.name} holds an absolute path"
        assert not re.search(r"20\d\d-\d\d-\d\d", text), f"{pa.name} holds a date"


def _panel_layout(wt: np.ndarray, panel: int) -> np.ndarray:
    """The pointwise layout of archdsl_rt.h (ARCH_PANEL), element by element: (co, k) of a (cout, cin)
    matrix at p0 * cin + k * width + co - p0, p0 the first row of co's panel, width that panel's rows."""
    m = wt.reshape(wt.shape[0], -1)
    cout, cin = m.shape
    flat = np.empty(cout * cin, dtype=np.float32)
    for co in range(cout):
        p0 = co // panel * panel
        width = min(panel, cout - p0)
        flat[p0 * cin + np.arange(cin) * width + co - p0] = m[co]
    return flat


def test_weights_round_trip_exactly(tmp_path):
    """The folded weights, written as 64-bit hexadecimal words, read back as the same float32
    values, bit for bit, at the offsets the header names, in the order the kernel reads them (the
    pointwise convs' packed in panels, the header's comment says of how many)."""
    g = _vww()
    w = init_weights(g, 3)
    c_target.compile(g, w, tmp_path, "net")
    text = (tmp_path / "net_weights.c").read_text()
    body = re.sub(r"/\*.*?\*/", "", text.split("net_weights = {{", 1)[1].split("}};", 1)[0], flags=re.S)
    words = np.array([int(t, 16) for t in body.replace("\n", "").split(",") if t.strip()], dtype="<u8")
    block = words.view("<f4")
    arrays = {name: (int(offset), what) for name, offset, what in
              re.findall(r"#define (\w+) \(net_weights\.f \+ (\d+)\) /\* (.*?) \*/", (tmp_path / "net_weights.h").read_text())}
    folded = fold_bn(g, schedule(g), w)
    assert folded
    packed = 0
    for main, (wt, b) in folded.items():
        for suffix, ref in (("w", wt), ("b", b)):
            name = f"net_{c_target.c_ident(main)}_{suffix}"
            start, what = arrays[name]
            vals = block[start:start + ref.size]
            panel = re.search(r"packed in panels of (\d+) output channels", what)
            want = _panel_layout(ref, int(panel.group(1))) if panel else ref.ravel()
            packed += bool(panel)
            assert np.array_equal(vals.view(np.uint32), want.view(np.uint32)), name
    assert packed == 13  # MobileNetV1's 13 pointwise convs


def test_weights_text_is_small(tmp_path):
    """The weights file stays within 2.5x the bytes of its floats (printed with %.9g it was 4x:
    67 MB for full-size MobileNetV1's 16.9 MB)."""
    g = _vww()
    c_target.compile(g, init_weights(g, 0), tmp_path, "net")
    n = int((tmp_path / "net.h").read_text().split("#define NET_WEIGHT_FLOATS ")[1].split()[0])
    size = (tmp_path / "net_weights.c").stat().st_size
    assert n > 100_000 and size <= 2.5 * 4 * n, f"{size:,} bytes of text for {4 * n:,} bytes of floats"


def test_arena_is_the_memory_plan(tmp_path):
    """One planner: the #define is plan_memory's arena, which is what `stats` reports."""
    from archdsl.analysis.costs import totals

    g = _vww()
    c_target.compile(g, init_weights(g, 0), tmp_path, "net")
    header = (tmp_path / "net.h").read_text()
    arena = int(re.search(r"#define NET_ARENA_BYTES (\d+)", header).group(1))
    plan = plan_memory(g, schedule(g))
    assert arena == plan.arena_bytes
    assert f"static float arena[{arena // 4}]" in (tmp_path / "net.c").read_text()
    t = totals(g)
    if "peak_activation_bytes" in t:
        assert t["peak_activation_bytes"] == arena


def test_model_code_has_no_stdio_or_malloc(tmp_path):
    g = parse_text(ALL_OPS)
    files = c_target.compile(g, init_weights(g, 0), tmp_path, "allops")
    model = [p for p in files if p.suffix in (".c", ".h") and p.name != "main.c" and p.parent == tmp_path]
    assert {p.name for p in model} >= {"allops.c", "allops.h", "allops_weights.c", "archdsl_rt.h"}
    for p in model:
        text = p.read_text()
        for banned in ("<stdio.h>", "malloc", "printf", "<stdlib.h>", "double"):
            assert banned not in text, f"{p.name} uses {banned}"


def test_one_call_per_step_with_its_spec_line(tmp_path):
    g = _vww()
    c_target.compile(g, init_weights(g, 0), tmp_path, "net")
    body = (tmp_path / "net.c").read_text().split("int net_invoke(void)")[1].split("return 0;")[0]
    comments = re.findall(r"/\* (.*?) \*/", body)
    steps = schedule(g)
    assert len(comments) == len(steps)
    for step, comment in zip(steps, comments):
        assert comment.startswith(f"{step.main.name}: line {step.main.row.line} ")
        assert f"-> {step.out_shape}" in comment and f"{step.main.macs:,} mult-adds" in comment
    assert body.count("arch_conv1x1(") == 13 and body.count("arch_conv_dw(") == 13


def test_only_used_kernels_are_copied(tmp_path):
    g = load_graph("mobilenet_v1_table3_separable.arch", alpha=0.25)
    names = {p.name for p in c_target.compile(g, init_weights(g, 0), tmp_path, "sep")}
    assert {"rt_dwconv.c", "rt_gemm.c", "rt_act.c"} <= names
    assert not names & {"rt_pool.c", "rt_fc.c", "rt_softmax.c", "rt_conv.c"}


def test_prefix_names_the_symbols(tmp_path):
    g = _vww()
    c_target.compile(g, init_weights(g, 0), tmp_path, "vww", prefix="kws")
    header = (tmp_path / "vww.h").read_text()
    assert "int kws_run(const float *in, float *out);" in header and "#define KWS_INPUT_SIZE 27648" in header
    with pytest.raises(ArchError, match="not a C identifier"):
        c_target.generate(g, init_weights(g, 0), "vww", prefix="9lives")


@needs_cc
@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_makefile_host_build_is_warning_free(tmp_path):
    g = load_graph("resnet8_cifar10.arch") if any(p.stem == "resnet8_cifar10" for p in all_specs()) \
        else parse_text(ALL_OPS)
    w = init_weights(g, 0)
    c_target.compile(g, w, tmp_path, "net")
    proc = subprocess.run(["make", "-s", f"CC={c_target.host_cc()}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    proc = subprocess.run(["./net_host", "--raw"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0
    printed = np.array([float(v) for v in proc.stdout.split()], dtype=np.float32)
    # main.c's fixed input: the LCG it documents, reproduced here
    s, vals = 12345, []
    for _ in range(g.input_shape.numel):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        vals.append(np.float32(s >> 8) / np.float32(8388608.0) - np.float32(1.0))
    x = np.array(vals, dtype=np.float32).reshape(1, *g.input_shape.chw)
    ref, _ = reference_forward(g, w, x)
    assert compare(printed, ref).ok


@needs_cc
def test_run_rejects_a_wrong_input_shape(tmp_path):
    g = parse_text(ALL_OPS)
    c_target.compile(g, init_weights(g, 0), tmp_path, "allops")
    with pytest.raises(ArchError, match="NCHW"):
        c_target.run(tmp_path, "allops", np.zeros((1, 17, 19, 3), np.float32))
    with pytest.raises(ArchError, match="missing"):
        c_target.run(tmp_path, "nothere", np.zeros((1, 3, 19, 17), np.float32))


def test_nan_weights_are_a_diagnostic(tmp_path):
    g = parse_text(ALL_OPS)
    w = init_weights(g, 0)
    w["fc1.weight"] = w["fc1.weight"].copy()
    w["fc1.weight"][0, 0] = np.nan
    with pytest.raises(ArchError, match="NaN"):
        c_target.compile(g, w, tmp_path, "allops")
    assert not (tmp_path / "allops.c").exists()


NO_PARAMS = "network pools()\ninput 9x8x3\nmax pool / s2 3x3 pad=same\nrelu6\navg pool 2x1\nglobal max pool\nsoftmax\n"


def test_network_without_parameters_builds_warning_free(tmp_path):
    """A network of pools and activations has no weights: its weights file is still a valid,
    non-empty translation unit (it was 'ISO C forbids an empty translation unit' under -pedantic)."""
    from conftest import parse_text

    from archdsl.backends.numpy_target import reference_forward

    g = parse_text(NO_PARAMS)
    assert not list(g.parameters())
    c_target.compile(g, {}, tmp_path, "net")
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
    out = c_target.run(tmp_path, "net", x)
    ref, _ = reference_forward(g, {}, x)
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-6)


def test_a_compile_error_shows_the_compilers_message(tmp_path):
    """Any compile error in generated code is archdsl's bug: the diagnostic carries what the
    compiler said, not only 'compiling net.c failed (exit 1)'."""
    from archdsl.errors import ArchError

    g = _vww()
    c_target.compile(g, init_weights(g, 0), tmp_path, "net")
    src = tmp_path / "net.c"
    src.write_text(src.read_text() + "\nstatic int broken = ;\n")
    with pytest.raises(ArchError) as info:
        c_target.run(tmp_path, "net", np.zeros((1, *g.input_shape.chw), np.float32))
    d = info.value.diagnostics[0]
    assert d.message.startswith("compiling net.c failed (exit 1): net.c:") and "error" in d.message
    assert "static int broken = ;" in d.hint or "expected expression" in d.hint


@pytest.fixture(scope="module")
def host_program(tmp_path_factory):
    """The generated host program of a small classifier, and what it computes."""
    from archdsl.backends.numpy_target import reference_forward

    outdir = tmp_path_factory.mktemp("host")
    g = load_graph("mobilenet_v1.arch", alpha=0.25, rho=0.25)
    w = init_weights(g, 0)
    c_target.compile(g, w, outdir, "net")
    exe = c_target.build(outdir, "net")
    x = np.random.default_rng(1).standard_normal((3, *g.input_shape.chw))
    ref, _ = reference_forward(g, w, x.astype(np.float32))
    return g, exe, outdir, x, ref.reshape(3, -1)


def _host(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)


def test_host_program_prints_what_a_person_reads(host_program):
    """The default run: the top-5 with scores, the latency, the arena and weights sizes and how to
    feed a real input, not 1,000 bare numbers."""
    g, exe, outdir, _, _ = host_program
    proc = _host(exe)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert len(out.splitlines()) < 15
    top = re.search(r"top-5 of 1000 outputs: (.*)", out).group(1)
    assert len(re.findall(r"class \d+ [\d.e-]+", top)) == 5
    header = (outdir / "net.h").read_text()
    arena = int(header.split("#define NET_ARENA_BYTES ")[1].split()[0])
    block = int(header.split("#define NET_WEIGHT_BYTES ")[1].split()[0])
    assert re.search(r"latency: [\d.]+ ms", out)
    assert f"arena {arena:,} bytes" in out and f"weights {block:,} bytes" in out
    assert "numpy.save('x.npy', x.astype(numpy.float32))" in out and "x.npy out.bin" in out and "--raw" in out


def test_host_program_top5_of_a_npy_batch(host_program, tmp_path):
    g, exe, _, x, ref = host_program
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    proc = _host(exe, tmp_path / "x.npy")
    assert proc.returncode == 0, proc.stderr
    for i in range(3):
        line = re.search(rf"image {i}: top-5 of 1000 outputs: (.*)", proc.stdout).group(1)
        printed = [int(c) for c in re.findall(r"class (\d+)", line)]
        assert printed[:3] == list(np.argsort(-ref[i])[:3]), (i, printed)
    assert "3 images in" in proc.stdout
    np.save(tmp_path / "one.npy", x[0].astype(np.float32))  # (C, H, W): one image
    assert "1 image in" in _host(exe, tmp_path / "one.npy").stdout
    raw = _host(exe, "--raw", tmp_path / "x.npy")
    assert compare(np.array(raw.stdout.split(), dtype=np.float32), ref).ok


def test_host_program_refuses_a_header_claiming_more_images_than_the_file_holds(host_program, tmp_path):
    """A .npy header may claim any count (2^62 images here, whose byte size overflows a long): the
    data is checked against it by division, and the file refused."""
    g, _, outdir, x, _ = host_program
    exe = c_target.build(outdir, "net", sanitize=True)  # UBSan: the count is never multiplied out
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (2 ** 62, *g.input_shape.chw)})
        f.write(x[0].astype(np.float32).tobytes())
    proc = subprocess.run([str(exe), str(path)], capture_output=True, text=True,
                          env={**os.environ, "UBSAN_OPTIONS": "halt_on_error=1", "ASAN_OPTIONS": "detect_leaks=0"})
    assert proc.returncode == 1 and "whose data does not match its header" in proc.stderr, proc.stderr
    assert "runtime error" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", ["float64 npy", "float64 raw", "partial raw", "npy shape", "npy nhwc", "empty raw"])
def test_host_program_checks_its_input_exactly(host_program, tmp_path, case):
    """A float64 file is not read as twice as many float32 images, nor a trailing partial image
    dropped: the program refuses with what it expected."""
    g, exe, _, x, _ = host_program
    c, h, w = g.input_shape.chw
    path = tmp_path / ("in.npy" if "npy" in case else "in.bin")
    if case == "float64 npy":
        np.save(path, x)
        why = "holds '<f8' values (float64), not float32"
    elif case == "float64 raw":
        x.tofile(path)
        why = "is the file float64? it must hold float32"
    elif case == "partial raw":
        path.write_bytes(x.astype(np.float32).tobytes()[:-12])
        why = f"which is not a whole number of images (2 whole, {4 * c * h * w - 12:,} bytes left over)"
    elif case == "npy shape":
        np.save(path, x.astype(np.float32)[:, :, :-1])
        why = f"holds an array of shape (3, {c}, {h - 1}, {w})"
    elif case == "npy nhwc":
        np.save(path, x.astype(np.float32).transpose(0, 2, 3, 1))
        why = "which looks NHWC"
    else:
        path.write_bytes(b"")
        why = "holds 0 bytes"
    proc = _host(exe, path, tmp_path / "out.bin")
    assert proc.returncode == 1, proc.stdout
    assert why in proc.stderr, proc.stderr
    assert f"expected float32 images of {c}x{h}x{w} (CxHxW, NCHW), {4 * c * h * w:,} bytes each" in proc.stderr


@pytest.fixture(scope="module")
def int8_host_program(tmp_path_factory):
    """The host program of an int8 build (PTQ of a small classifier) and its NumPy int8 reference."""
    from archdsl.quant.network import QuantizedNetwork
    from archdsl.quant.ptq import quantize
    from archdsl.quant.runtime import run_int8

    g = parse_text("network q(classes = 7)\ninput 8x8x3\nconv / s2 3x3x3x8 bias=yes\nrelu\n"
                   "avg pool / s1 4x4\nfc 8x7\n")
    rng = np.random.default_rng(0)
    calib = rng.uniform(-1, 1, (16, *g.input_shape.chw)).astype(np.float32)
    q, _ = quantize(g, init_weights(g, seed=3), calib)
    net = QuantizedNetwork.build(g, q)
    outdir = tmp_path_factory.mktemp("host_int8")
    c_target.compile(g, q, outdir, "qnet")
    exe = c_target.build(outdir, "qnet")
    return g, net, exe, outdir, calib[:3], lambda xq: run_int8(net, xq)[0].reshape(len(xq), -1)


def test_int8_host_program_prints_scores_as_real_values(int8_host_program):
    g, net, exe, outdir, _, _ = int8_host_program
    proc = _host(exe)
    assert proc.returncode == 0, proc.stderr
    top = re.search(r"top-5 of 7 outputs: (.*)", proc.stdout).group(1)
    scores = re.findall(r"class \d+ ([\d.e-]+) \(q (-?\d+)\)", top)
    assert len(scores) == 5
    for real, qv in scores:  # the score printed is the dequantized value of the int8 printed
        assert float(real) == pytest.approx(net.output.scale * (int(qv) - net.output.zero_point), rel=1e-5)
    header = (outdir / "qnet.h").read_text()
    const = int(header.split("#define QNET_CONSTANT_BYTES ")[1].split()[0])
    assert f"constants {const:,} bytes" in proc.stdout and "int8 NCHW" in proc.stdout


def test_int8_host_program_reads_int8_and_quantizes_float32(int8_host_program, tmp_path):
    """An int8 .npy goes in as it is; a float32 .npy is quantized as TFLite's QUANTIZE (round half
    away from zero, then the zero point, clamped); raw bytes are int8. All three give the NumPy
    int8 runtime's outputs bit for bit."""
    from archdsl.quant.arithmetic import quantize_float

    g, net, exe, _, x, reference = int8_host_program
    x = np.concatenate([x, np.full((1, *x.shape[1:]), 1e6, np.float32)])  # and one image that clamps
    xq = quantize_float(x, net.input.scale, net.input.zero_point)
    want = reference(xq)
    for name, save in [("q.npy", lambda p: np.save(p, xq)), ("f.npy", lambda p: np.save(p, x)),
                       ("q.bin", lambda p: xq.tofile(p))]:
        save(tmp_path / name)
        proc = _host(exe, tmp_path / name, tmp_path / "out.bin")
        assert proc.returncode == 0, (name, proc.stderr)
        assert "wrote 4 outputs of 7 int8" in proc.stdout
        got = np.fromfile(tmp_path / "out.bin", np.int8).reshape(4, -1)
        np.testing.assert_array_equal(got, want, err_msg=name)
    raw = _host(exe, "--raw", tmp_path / "q.npy")
    assert [int(v) for v in raw.stdout.split()] == want.ravel().tolist()


@pytest.mark.parametrize("case", ["float64 npy", "int16 npy", "partial raw"])
def test_int8_host_program_checks_its_input_exactly(int8_host_program, tmp_path, case):
    g, _, exe, _, x, _ = int8_host_program
    c, h, w = g.input_shape.chw
    path = tmp_path / ("in.npy" if "npy" in case else "in.bin")
    if case == "float64 npy":
        np.save(path, x.astype(np.float64))
        why = "holds '<f8' values (float64), not int8 ('|i1') or float32 ('<f4')"
    elif case == "int16 npy":
        np.save(path, x.astype(np.int16))
        why = "holds '<i2' values, not int8"
    else:
        path.write_bytes(bytes(2 * c * h * w + 5))
        why = "which is not a whole number of images (2 whole, 5 bytes left over)"
    proc = _host(exe, path)
    assert proc.returncode == 1, proc.stdout
    assert why in proc.stderr, proc.stderr
    assert f"expected int8 images of {c}x{h}x{w} (CxHxW, NCHW), {c * h * w:,} bytes each" in proc.stderr
