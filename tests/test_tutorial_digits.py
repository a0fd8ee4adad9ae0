"""docs/tutorial.md, end to end on real data: scikit-learn's handwritten digits (1,797 real 8x8
images, bundled, no download) through specs/digits_cnn.arch.

The user's path, with the commands the tutorial prints: compile the spec to PyTorch, train the
generated module (examples/digits/train.py, one process and under torchrun with two gloo
processes), `archdsl quantize` with calibration on the training images, `archdsl compile --target
c` with the int8 weights, and the 360 held-out images through the Cortex-M4 build under QEMU in one
run. Checked: int8 accuracy within 1 point of the float model's, and the Cortex-M outputs equal to
the NumPy int8 runtime's (archdsl.quant.runtime.run_int8, itself bit-exact with TensorFlow Lite
Micro) on every image.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from archdsl.backends import c_target
from archdsl.cli import app

from conftest import ROOT, load_graph

pytest.importorskip("torch")
pytest.importorskip("sklearn")

SPEC = ROOT / "specs" / "digits_cnn.arch"
TRAIN = ROOT / "examples" / "digits" / "train.py"
EPOCHS = "30"


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def _train_module():
    spec = importlib.util.spec_from_file_location("digits_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(work folder, float held-out accuracy) after the tutorial's steps 1-2."""
    work = tmp_path_factory.mktemp("digits")
    cli("compile", SPEC, "--target", "torch", "-o", work / "torch")
    accuracy = _train_module().main(["--module", str(work / "torch"), "--out", str(work / "run"), "--epochs", EPOCHS])
    return work, accuracy


def test_float_model_learns_the_digits(trained):
    _, accuracy = trained
    assert accuracy >= 0.95  # a 6,506-weight CNN; a linear model on the same split reaches about 0.96


def test_int8_on_cortex_m4_matches_numpy_and_float(trained):
    if c_target.mcu_unavailable():
        pytest.skip(c_target.mcu_unavailable())
    from archdsl.quant.arithmetic import quantize_float
    from archdsl.quant.network import QuantizedNetwork
    from archdsl.quant.runtime import run_int8
    from archdsl.quant.weights_file import load_int8

    work, float_accuracy = trained
    run = work / "run"
    out = cli("quantize", SPEC, "--weights", run / "digits_cnn.pt", "--calibration", run / "train.npy",
              "-o", work / "digits_int8.npz")
    assert "1437 calibration samples" in out
    cli("compile", SPEC, "--target", "c", "--weights", work / "digits_int8.npz", "-o", work / "c")

    graph = load_graph(SPEC)
    net = QuantizedNetwork.build(graph, load_int8(work / "digits_int8.npz", graph))
    x, labels = np.load(run / "test.npy"), np.load(run / "test_labels.npy")
    q = quantize_float(x, net.input.scale, net.input.zero_point)
    ref, _ = run_int8(net, q)

    b = c_target.build_mcu(work / "c", "digits_cnn", "cortex-m4")
    r = c_target.run_mcu(b, q, graph.output_shape.numel)  # all 360 images in one QEMU run
    assert len(r.ticks) == len(q) == 360
    np.testing.assert_array_equal(r.output, ref.reshape(len(q), -1))  # every image, every logit
    int8_accuracy = float((r.output.argmax(1) == labels).mean())
    assert abs(int8_accuracy - float_accuracy) <= 0.01, (int8_accuracy, float_accuracy)
    assert b.arena_bytes == 1536 and b.weights_bytes < 10_000  # the int8 figures docs/tutorial.md quotes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_same_script_under_torchrun(trained, tmp_path):
    """torchrun --nproc_per_node=2 (gloo, CPU): each process trains on its half of every batch and
    DDP averages the gradients. BatchNorm's batch statistics are each process's own (SyncBatchNorm
    needs a GPU), so the model is not the one-process model bit for bit; it learns as well."""
    import torch

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    work, float_accuracy = trained
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
                           str(TRAIN), "--module", str(work / "torch"), "--out", str(tmp_path / "two"),
                           "--epochs", "15"], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"float accuracy on 360 held-out images: ([0-9.]+)% \(2 processes\)", proc.stdout)
    assert m, proc.stdout
    assert float(m.group(1)) >= 90.0, proc.stdout
    two = torch.load(tmp_path / "two" / "digits_cnn.pt", weights_only=True)
    one = torch.load(work / "run" / "digits_cnn.pt", weights_only=True)
    assert two.keys() == one.keys()  # the spec's parameter names: every archdsl command takes it
