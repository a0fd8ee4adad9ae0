"""Fuzzing under a fixed time budget: hostile specs and files give diagnostics, never a traceback,
a hang or a crash.

Each section runs in its own process (a crash in a C extension is a failure, not a dead suite),
tries inputs until its share of the budget is spent, and reports how many it tried:

    grammar     hypothesis over the grammar's pieces (rows of op words, strides, shapes, options,
                {expressions}, blocks, repeats), parsed, elaborated, costed and compiled to NumPy source
    specs       byte-level mutations of every spec in specs/ (flips, cuts, splices, NULs, CRs,
                bidi overrides, huge numbers), checked and costed
    npz, onnx   mutated weight files through `--weights` (weights.load_weights)
    tflite, h5  mutated model files through `archdsl import` (importers.import_weights); seeds are
                the MLPerf Tiny ResNet-8 models when ../shared/models is present, else files
                built here

Every input either succeeds or raises ArchError; anything else, or one input taking more than
HANG_SECONDS, fails the test and names the input (saved under the test's tmp folder).
Run one section by hand: python tests/test_fuzz.py SECTION SECONDS SEED OUTDIR
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPECS = ROOT / "specs"
MODELS = ROOT.parent / "shared" / "models"
BUDGET = {"grammar": 12, "specs": 12, "npz": 7, "onnx": 7, "tflite": 7, "h5": 7}  # seconds: 52 in all
HANG_SECONDS = 20
MIN_INPUTS = 5  # a section that tried fewer did not really run

TINY = """network tiny(classes = 4)
input 8x8x3
after conv: bn relu
conv / s2     3x3x3x8
conv dw / s1  3x3x8 dw
avg pool / s4 4x4
fc / s1       8x{classes}
softmax / s1
"""


# ---------------------------------------------------------------- mutations

SPECIAL = [b"\x00", b"\r", b"\n", b"\t", "\u202e".encode(), b"{", b"}", b"(", b")", b"x", b"/ s", b"@",
           b"=", b"#", b"\\\n", b"99999999999999999999", b"1e999", b"-", b"**", b"\xff\xfe", b"\"\"\"", b"*/"]


def mutate(data: bytes, rng: random.Random, text: bool) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not buf:
            buf.extend(rng.choice(SPECIAL))
            continue
        i = rng.randrange(len(buf))
        kind = rng.randrange(7)
        if kind == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del buf[i:i + rng.randint(1, 64)]
        elif kind == 2:
            buf[i:i] = rng.choice(SPECIAL) if text else bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 3:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, 200)]
        elif kind == 4:
            del buf[rng.randrange(len(buf)):]
        elif kind == 5 and not text and i + 4 <= len(buf):  # an extreme 32-bit field
            buf[i:i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\0\0\0\0"])
        else:
            buf[i] = rng.randrange(256)
    return bytes(buf)


# ---------------------------------------------------------------- the driver (child process)

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _tiny_graph():
    sys.path.insert(0, str(HERE))
    from conftest import parse_text

    return parse_text(TINY)


def _grammar_inputs(rng: random.Random, deadline: float):
    """Specs drawn by hypothesis from the grammar's pieces."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    word = st.sampled_from(["conv", "conv dw", "dw", "fc", "avg pool", "max pool", "global avg pool", "softmax",
                            "relu", "relu6", "hswish", "bn", "residual", "scale", "concat", "branch", "shortcut",
                            "flatten", "dropout", "foo", "x", "block1", "n"])
    num = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["{c}", "{2*c}", "{c//0}", "{1e999}", "{-c}",
                                                                   "{round(c*0.5)}", "{c**2}", "{((c))}", "0.5"]))
    shape = st.lists(num, min_size=1, max_size=4).map("x".join)
    option = st.tuples(st.sampled_from(["n", "pad", "name", "after", "bias", "eps", "shortcut", "groups"]),
                       st.one_of(num, st.sampled_from(["same", "valid", "none", "bn", "yes", "auto", "relu"])))
    element = st.one_of(word, shape, shape.map(lambda s: "@ " + s), st.sampled_from(["/ s1", "/ s2", "/ s{c}",
                        "/ s0", "/ s9999"]), option.map(lambda kv: f"{kv[0]}={kv[1]}"), st.sampled_from(["2x", "{"]))
    junk_row = st.lists(element, min_size=1, max_size=6).map(" ".join)
    good_row = st.sampled_from(["conv / s1 3x3x{c}x{c}", "conv / s2 1x1x{c}x{c}", "conv dw / s1 3x3x{c} dw",
                                "conv dw / s2 3x3x{c} dw pad=same", "max pool / s2 2x2", "avg pool / s1 3x3 pad=same",
                                "relu6", "hswish", "conv / s1 1x1x{c}x{c} n=2", "residual {", "scale {",
                                "conv / s1 3x3x{c}x{c} name=c{c} after=bn", "b(k=1)", "2x {"])
    row = st.one_of(good_row, good_row, junk_row)

    def body(rows):
        out = []
        for r in rows:
            out.append(r)
            if r.endswith("{"):
                out.append("  conv / s1 1x1x{c}x{c}")
                out.append("}")
        return out

    header = st.sampled_from(["network g(c = 8)", "network g(c = 8, alpha = 1.0)", "network g()", ""])
    inp = st.sampled_from(["input 16x16x8", "input 8x8x{c}", "input 0x0x0", "input 1x1x1", ""])
    misc = st.lists(st.sampled_from(["after conv: bn relu", "width alpha round floor", "defaults conv: pad=same",
                                     "block b(k = 3) {\n  conv / s1 {k}x{k}x{c}x{c}\n}", "b", "resolution 0.5"]),
                    max_size=2)
    spec = st.tuples(header, inp, misc, st.lists(row, max_size=8)).map(
        lambda t: "\n".join([t[0], t[1], *t[2], *body(t[3])]) + "\n")
    found: list[str] = []

    class Enough(Exception):
        pass

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec)
    def draw(text):
        found.append(text)
        if time.monotonic() > deadline:
            raise Enough()
    try:
        draw()
    except Enough:
        pass
    rng.shuffle(found)
    return found


def _check_spec_text(text: str, name: str, tmp: Path) -> None:
    from archdsl.analysis.costs import totals
    from archdsl.cli import load_graph

    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    graph = load_graph(path, None)
    totals(graph)  # what `stats` computes
    if len(graph.nodes) < 200 and sum(spec.numel for _, spec in graph.parameters()) < 200_000:
        from archdsl.backends.numpy_target import generate
        from archdsl.weights import init_weights

        source, _ = generate(graph, init_weights(graph, 0), "fuzzed")
        compile(source, "fuzzed.py", "exec")  # the generated module is valid Python


def drive(section: str, seconds: float, seed: int, outdir: Path) -> dict:
    from archdsl.errors import ArchError

    rng = random.Random(seed)
    tmp = outdir / section
    tmp.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    deadline = start + seconds
    tried = refused = 0
    signal.signal(signal.SIGALRM, _alarm)

    if section == "grammar":
        inputs = iter(_grammar_inputs(rng, deadline - seconds / 2))

        def one():
            text = next(inputs)
            return text.encode(), lambda p: _check_spec_text(text, "g.arch", tmp)
    elif section == "specs":
        seeds = [p.read_bytes() for p in sorted(SPECS.glob("*.arch"))]

        def one():
            data = mutate(rng.choice(seeds), rng, text=True)
            return data, lambda p: _check_spec_text(data, "m.arch", tmp)
    else:
        one = _file_section(section, rng, tmp)
        deadline = time.monotonic() + seconds  # the seed files took their time to make

    while time.monotonic() < deadline:
        try:
            data, run = one()
        except StopIteration:
            break
        case = tmp / f"case-{tried}"
        case.write_bytes(data)
        tried += 1
        signal.alarm(HANG_SECONDS)
        try:
            run(case)
        except ArchError as err:
            err.render()  # a diagnostic must render
            refused += 1
        except Hang:
            return {"section": section, "tried": tried, "failure": f"hang over {HANG_SECONDS} s", "case": str(case)}
        except Exception:
            return {"section": section, "tried": tried, "failure": traceback.format_exc(), "case": str(case)}
        finally:
            signal.alarm(0)
        case.unlink()
    return {"section": section, "tried": tried, "refused": refused, "failure": None}


def _file_section(section: str, rng: random.Random, tmp: Path):
    import numpy as np

    from archdsl.importers import import_weights
    from archdsl.weights import init_weights, load_weights, npz_bytes

    sys.path.insert(0, str(HERE))
    from conftest import load_graph

    tiny = _tiny_graph()
    if section == "npz":
        seed_bytes, graph, suffix, use = npz_bytes(init_weights(tiny, 0)), tiny, ".npz", load_weights
    elif section == "onnx":
        from archdsl.backends.onnx_target import model_bytes

        seed_bytes, graph, suffix, use = model_bytes(tiny, init_weights(tiny, 0)), tiny, ".onnx", load_weights
    elif section == "tflite":
        if (MODELS / "ic" / "pretrainedResnet.tflite").is_file():
            seed_bytes = (MODELS / "ic" / "pretrainedResnet.tflite").read_bytes()
            graph = load_graph("resnet8_cifar10.arch")
        else:
            from tflite_builder import conv_model

            w = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
            seed_bytes = conv_model(w, np.zeros(8, np.float32), (8, 8, 3))
            graph = _conv_graph()
        suffix, use = ".tflite", lambda p, g: import_weights(g, p)
    elif section == "h5":
        seed_bytes, graph = _h5_seed(tmp)
        suffix, use = ".h5", lambda p, g: import_weights(g, p)
    else:
        raise SystemExit(f"unknown section {section}")

    def one():
        data = mutate(seed_bytes, rng, text=False)
        path = tmp / f"input{suffix}"

        def run(_case):
            path.write_bytes(data)
            use(path, graph)
        return data, run
    return one


def _conv_graph():
    sys.path.insert(0, str(HERE))
    from conftest import parse_text

    return parse_text("network c()\ninput 8x8x3\nconv / s1 3x3x3x8 bias=yes\n")


def _h5_seed(tmp: Path):
    sys.path.insert(0, str(HERE))
    from conftest import load_graph

    if (MODELS / "ic" / "pretrainedResnet.h5").is_file():
        return (MODELS / "ic" / "pretrainedResnet.h5").read_bytes(), load_graph("resnet8_cifar10.arch")
    import h5py
    import numpy as np

    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, 8, 8, 3]}},
        {"class_name": "Conv2D", "config": {"name": "conv", "filters": 8, "kernel_size": [3, 3], "strides": [1, 1],
                                            "padding": "same", "use_bias": True, "activation": "linear"}}]}}
    path = tmp / "seed.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        g = f.create_group("model_weights/conv")
        g.attrs["weight_names"] = [b"conv/kernel:0", b"conv/bias:0"]
        g["conv/kernel:0"] = np.zeros((3, 3, 3, 8), np.float32)
        g["conv/bias:0"] = np.zeros(8, np.float32)
    return path.read_bytes(), _conv_graph()


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize("section", list(BUDGET))
def test_fuzz(section, tmp_path, record_property):
    if section in ("tflite", "h5"):
        pytest.importorskip({"tflite": "tflite", "h5": "h5py"}[section])
    if section == "onnx":
        pytest.importorskip("onnx")
    budget = BUDGET[section]
    proc = subprocess.run([sys.executable, __file__, section, str(budget), "0", str(tmp_path)],
                          capture_output=True, text=True, timeout=budget + HANG_SECONDS + 60, cwd=ROOT)
    assert proc.returncode == 0, f"the {section} fuzzer crashed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    record_property("fuzz_inputs", report["tried"])
    print(f"fuzz {section}: {report['tried']} inputs in {budget} s, {report.get('refused', '?')} refused")
    assert report["failure"] is None, f"{section} input {report['case']}:\n{report['failure']}"
    assert report["tried"] >= MIN_INPUTS, report


if __name__ == "__main__":
    sec, secs, seed, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    import warnings

    warnings.simplefilter("ignore")
    result = drive(sec, secs, seed, out)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    os._exit(0)
