"""`archdsl compile` and the all-or-nothing file writer every target uses."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import SPECS, load_graph
from typer.testing import CliRunner

from archdsl import backends, fsutil
from archdsl.cli import app
from archdsl.errors import ArchError
from archdsl.weights import init_weights, save_npz

torch.set_num_threads(1)
V1 = str(SPECS / "mobilenet_v1.arch")
SMALL = ["--set", "alpha=0.25", "--set", "rho=0.25"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- write_files_atomically


def test_writes_every_file_with_exact_bytes(tmp_path):
    out = tmp_path / "new" / "dir"
    paths = fsutil.write_files_atomically(out, {"a.txt": "line\r\nnext\n", "sub/b.bin": b"\x00\x01", "c.py": "é"})
    assert paths == [out / "a.txt", out / "sub" / "b.bin", out / "c.py"]
    assert (out / "a.txt").read_bytes() == b"line\r\nnext\n"
    assert (out / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert (out / "c.py").read_bytes() == "é".encode()
    assert sorted(p.name for p in tmp_path.joinpath("new").iterdir()) == ["dir"]  # no temp folder left


def test_a_failure_mid_write_leaves_the_old_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    fsutil.write_files_atomically(out, {"net.py": "good\n", "net.npz": b"good"})
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:  # the second file: the first is already written (in the temp folder)
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "fsync", failing_fsync)
    with pytest.raises(ArchError, match="No space left on device"):
        fsutil.write_files_atomically(out, {"net.py": "new\n", "net.npz": b"new", "extra.txt": "x"})
    assert (out / "net.py").read_text() == "good\n"
    assert (out / "net.npz").read_bytes() == b"good"
    assert sorted(p.name for p in out.iterdir()) == ["net.npz", "net.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "a temporary folder was left behind"


def test_an_exception_while_producing_content_writes_nothing(tmp_path):
    class Boom(dict):
        def __getitem__(self, key):
            if key == "b":
                raise RuntimeError("generator bug")
            return super().__getitem__(key)

    with pytest.raises(RuntimeError):
        fsutil.write_files_atomically(tmp_path / "out", Boom(a="1", b="2"))
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_destinations_and_names(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchError, match="it is a file"):
        fsutil.write_files_atomically(tmp_path / "file", {"a": "b"})
    for name in ("../escape.txt", "/abs.txt", "", "a/../../b"):
        with pytest.raises(ArchError, match="must be a plain file name"):
            fsutil.write_files_atomically(tmp_path / "o", {name: "x"})
    assert not (tmp_path / "escape.txt").exists()


# ---------------------------------------------------------------- archdsl compile


def test_compile_numpy_prints_files_and_runs(tmp_path):
    res = invoke("compile", V1, "--target", "numpy", "-o", tmp_path / "np", *SMALL)
    assert res.exit_code == 0, res.output
    py, npz = tmp_path / "np" / "mobilenet_v1.py", tmp_path / "np" / "mobilenet_v1.npz"
    assert f"wrote {py}" in res.stdout and f"wrote {npz}" in res.stdout
    graph = load_graph("mobilenet_v1.arch", alpha=0.25, rho=0.25)
    x = np.random.default_rng(0).standard_normal((1, *graph.input_shape.chw)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, str(py), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "y.npy").shape == (1, 1000, 1, 1)


def test_compile_is_deterministic(tmp_path):
    for d in ("a", "b"):
        res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / d, *SMALL, "--seed", "3", "--name", "net")
        assert res.exit_code == 0, res.output
    for f in ("net.py", "net.npz"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "c", *SMALL, "--seed", "4", "--name", "net")
    assert (tmp_path / "c" / "net.npz").read_bytes() != (tmp_path / "a" / "net.npz").read_bytes()


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_compile_with_a_weight_file(tmp_path, fmt):
    graph = load_graph("mobilenet_v1.arch", alpha=0.25, rho=0.25)
    weights = init_weights(graph, seed=11)
    path = tmp_path / f"w.{fmt}"
    if fmt == "npz":
        save_npz(weights, path)
    else:
        torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, path)
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "from_file", *SMALL, "--weights", path)
    assert res.exit_code == 0, res.output
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "from_seed", *SMALL, "--seed", "11")
    assert res.exit_code == 0, res.output
    assert ((tmp_path / "from_file" / "mobilenet_v1.npz").read_bytes()
            == (tmp_path / "from_seed" / "mobilenet_v1.npz").read_bytes())


def test_unknown_target_is_a_diagnostic(tmp_path):
    res = invoke("compile", V1, "-t", "numpi", "-o", tmp_path)
    assert res.exit_code == 1
    assert "error: unknown target 'numpi'" in res.stderr and "did you mean 'numpy'?" in res.stderr
    assert "Traceback" not in res.output


def test_a_target_not_in_this_installation_is_a_diagnostic(tmp_path, monkeypatch):
    monkeypatch.setitem(backends.TARGETS, "tflite", "archdsl.backends.tflite_target")
    res = invoke("compile", V1, "-t", "tflite", "-o", tmp_path)
    assert res.exit_code == 1
    assert "error: the tflite target is not part of this installation" in res.stderr
    assert "available targets: numpy" in res.stderr


def test_an_unavailable_target_says_why(tmp_path, monkeypatch):
    from archdsl.backends import numpy_target

    monkeypatch.setattr(numpy_target, "unavailable", lambda: "no compiler found (gcc)")
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o")
    assert res.exit_code == 1
    assert "error: the numpy target is unavailable: no compiler found (gcc)" in res.stderr
    assert not (tmp_path / "o").exists()


def test_bad_weight_file_is_a_diagnostic(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"garbage")
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o", "--weights", tmp_path / "w.npz")
    assert res.exit_code == 1
    assert f"{tmp_path / 'w.npz'}: error: not a readable .npz file" in res.stderr
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o", "--weights", tmp_path / "none.npz")
    assert res.exit_code == 1 and "error: no such weight file" in res.stderr
    assert not (tmp_path / "o").exists()


def test_mismatched_weights_show_both_shapes(tmp_path):
    small = init_weights(load_graph("mobilenet_v1.arch", alpha=0.25, rho=0.25))
    save_npz(small, tmp_path / "small.npz")
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o", "--set", "alpha=0.5", "--set", "rho=0.25",
                 "--weights", tmp_path / "small.npz")
    assert res.exit_code == 1
    assert "error: the weights do not match mobilenet_v1" in res.stderr
    assert "shape mismatch for conv1.conv.weight: the file has (8, 3, 3, 3), the spec needs (16, 3, 3, 3)" \
        in res.stderr
    assert "hint: were the weights saved for the same spec and the same --set values?" in res.stderr
    assert "Traceback" not in res.output


def test_prefix_only_where_the_target_takes_it(tmp_path):
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o", "--prefix", "mnv1")
    assert res.exit_code == 1 and "--prefix does not apply to the numpy target" in res.stderr


def test_bad_name_and_bad_spec_are_diagnostics(tmp_path):
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o", "--name", "my-net", *SMALL)
    assert res.exit_code == 1 and "must be an identifier" in res.stderr
    res = invoke("compile", tmp_path / "missing.arch", "-t", "numpy", "-o", tmp_path / "o")
    assert res.exit_code == 1 and "no such spec file" in res.stderr
    res = invoke("compile", V1, "-t", "numpy", "-o", tmp_path / "o", "--set", "alpha=")
    assert res.exit_code == 1 and "expected NAME=VALUE" in res.stderr


@pytest.mark.parametrize("target", ["numpy", "c"])
def test_compile_never_imports_torch_or_onnx(tmp_path, target):
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from archdsl.cli import app
        res = CliRunner().invoke(app, ["compile", {V1!r}, "-t", {target!r}, "-o", {str(tmp_path / 'o')!r},
                                       "--set", "alpha=0.25", "--set", "rho=0.25"])
        assert res.exit_code == 0, res.output
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxruntime"))
        print(heavy)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "error"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_help_lists_every_option():
    res = invoke("compile", "--help")
    assert res.exit_code == 0
    for opt in ("--target", "--out", "--set", "--weights", "--seed", "--name", "--prefix"):
        assert opt in res.stdout, opt
