"""`archdsl import`: the mapping table, the .npz it writes, and one diagnostic per kind of mismatch.

Each bad spec is the shipped spec with one change; the error must name the spec line (with the
caret under that row), and for a shape error the IR parameter, the model tensor and both shapes.
"""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from archdsl.cli import app
from archdsl.weights import load_weights

from conftest import SPECS, load_graph

runner = CliRunner()
VWW_SPEC = SPECS / "vww_mobilenet_v1.arch"
RESNET_SPEC = SPECS / "resnet8_cifar10.arch"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def variant(tmp_path, spec, name, *edits, drop_declared=True):
    """The spec with `edits` [(regex, replacement)] applied, declared '@ HxWxC' columns removed."""
    text = spec.read_text(encoding="utf-8")
    if drop_declared:
        text = re.sub(r"@ [0-9x{}a-z*]+", "", text)
    for pattern, repl in edits:
        new = re.sub(pattern, repl, text, count=1, flags=re.M)
        assert new != text, f"edit {pattern!r} changed nothing"
        text = new
    path = tmp_path / f"{name}.arch"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path, needle: str) -> int:
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return k
    raise AssertionError(f"{needle!r} not in {path}")


def fails_at(result, path, line: int) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(path))}:{line}:\d+: error: ", result.output), result.output
    return result.output


@pytest.fixture
def vww(models_dir):
    return models_dir / "vww" / "vww_96_float.tflite", models_dir / "vww" / "vww_96.h5"


# ---------------------------------------------------------------- the happy path


def test_import_prints_the_table_and_writes_loadable_weights(vww, tmp_path):
    tflite, _ = vww
    out = tmp_path / "vww.npz"
    r = invoke("import", VWW_SPEC, tflite, "-o", out)
    assert r.exit_code == 0, r.output
    head = r.output.splitlines()[0].split()
    assert head[:4] == ["line", "IR", "parameter", "model"]
    first_conv = line_of(VWW_SPEC, "3x3x3x8")
    assert re.search(rf"^\s*{first_conv}\s+conv1\.conv\.weight\s+model/conv2d/Conv2D\s+\(8, 3, 3, 3\)\s+->\s+"
                     r"\(8, 3, 3, 3\)\s+OHWI -> IR", r.output, re.M), r.output
    assert re.search(r"dw1\.dw\.weight\s+.*\(1, 3, 3, 8\)\s+->\s+\(8, 1, 3, 3\)\s+1HWC -> IR", r.output), r.output
    assert re.search(r"conv1\.bn\.\{weight,bias,running_mean,running_var\}\s+\(identity\)", r.output)
    assert "221,794 values" in r.output and "BN folded in the model" in r.output
    graph = load_graph(VWW_SPEC)
    w = load_weights(out, graph)  # a strict load: every key, every shape
    assert sum(v.size for v in w.values()) == 221_794


def test_the_weights_file_is_deterministic(vww, tmp_path):
    _, h5 = vww
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert invoke("import", VWW_SPEC, h5, "-o", a, "-q").exit_code == 0
    assert invoke("import", VWW_SPEC, h5, "-o", b, "-q").exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_set_imports_the_large_resnet(models_dir, tmp_path):
    """The IC02 ResNet (F = 40) is the same spec with --set f=40; without it, the first row says why not."""
    large = models_dir / "ic" / "pretrainedResnet_large_float.tflite"
    r = invoke("import", RESNET_SPEC, large, "-o", tmp_path / "l.npz", "--set", "f=40", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("import", RESNET_SPEC, large, "-o", tmp_path / "l.npz", "-q")
    out = fails_at(r, RESNET_SPEC, line_of(RESNET_SPEC, "3x3x3x{f}"))
    assert "(40, 3, 3, 3)" in out and "the spec needs (16, 3, 3, 3)" in out


def test_imported_weights_compile_and_run(vww, tmp_path):
    """SPEC + MODEL -> import -> compile --weights -> run: the README's output for the zeros image."""
    tflite, _ = vww
    npz = tmp_path / "vww.npz"
    assert invoke("import", VWW_SPEC, tflite, "-o", npz, "-q").exit_code == 0
    r = invoke("compile", VWW_SPEC, "--target", "numpy", "-o", tmp_path / "np", "--weights", npz)
    assert r.exit_code == 0, r.output
    code = ("import numpy as np, vww_mobilenet_v1 as m; "
            "print(' '.join('%.6f' % v for v in m.run(np.zeros((1, 3, 96, 96), np.float32)).ravel()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "np", capture_output=True, text=True,
                         check=True).stdout.split()
    np.testing.assert_allclose([float(v) for v in out], [0.979771, 0.020229], atol=2e-6)


# ---------------------------------------------------------------- one diagnostic per mismatch


@pytest.mark.parametrize("source", ["tflite", "h5"])
def test_wrong_channel_count(vww, tmp_path, source):
    model = vww[0] if source == "tflite" else vww[1]
    spec = variant(tmp_path, VWW_SPEC, "wrong_channels",
                   (r"^conv / s1         1x1x8x16", "conv / s1         1x1x8x24"),
                   (r"3x3x16 dw", "3x3x24 dw"), (r"1x1x16x32", "1x1x24x32"))
    out = fails_at(invoke("import", spec, model, "-o", tmp_path / "x.npz"), spec, line_of(spec, "1x1x8x24"))
    tensor, shape = (("model/conv2d_1/Conv2D", r"\(16, 1, 1, 8\) \(OHWI\)") if source == "tflite"
                     else ("conv2d_1/conv2d_1/kernel:0", r"\(1, 1, 8, 16\) \(HWIO\)"))
    assert re.search(rf"conv2\.conv\.weight: the model's tensor '{re.escape(tensor)}' .*has shape {shape} -> "
                     r"\(16, 8, 1, 1\), the spec needs \(24, 8, 1, 1\)", out), out
    assert "^~~" in out and "hint: the model's layer is a 1x1x8x16 conv; the row says 1x1x8x24 conv" in out


@pytest.mark.parametrize("source", ["tflite", "h5"])
def test_missing_layer(vww, tmp_path, source):
    """4x instead of 5x: the model has one depthwise-separable block more than the spec."""
    model = vww[0] if source == "tflite" else vww[1]
    spec = variant(tmp_path, VWW_SPEC, "missing", (r"^5x \{", "4x {"))
    out = fails_at(invoke("import", spec, model, "-o", tmp_path / "x.npz"), spec, line_of(spec, "1x1x128x256"))
    assert "model has 2 layer(s) with no row in the spec before this row" in out
    assert "1x1x128x128 conv" in out and "3x3x128 dw" in out
    assert "hint: a row missing from the spec, or a repeat count too low?" in out


@pytest.mark.parametrize("source", ["tflite", "h5"])
def test_extra_layer(vww, tmp_path, source):
    """One row more than the model: an extra 1x1 conv before the pool."""
    model = vww[0] if source == "tflite" else vww[1]
    spec = variant(tmp_path, VWW_SPEC, "extra", (r"^(avg pool)", r"conv / s1         1x1x256x256\n\1"))
    extra_line = line_of(spec, "avg pool") - 1
    out = fails_at(invoke("import", spec, model, "-o", tmp_path / "x.npz"), spec, extra_line)
    assert "this row (1x1x256x256 conv" in out and "has no counterpart in the" in out
    assert "hint: is the row extra, or a repeat count too high?" in out


def test_missing_residual(models_dir, tmp_path):
    """A ResNet spec whose first stack is written without its residual: the model's ADD has no row."""
    spec = variant(tmp_path, RESNET_SPEC, "no_residual",
                   (r"^residual after=relu \{\s*# stack 1.*\n", ""),
                   (r"(after=bn.*\n)\}\n", r"\1"))
    model = models_dir / "ic" / "pretrainedResnet.tflite"
    out = fails_at(invoke("import", spec, model, "-o", tmp_path / "x.npz"), spec,
                   line_of(spec, "3x3x{f}x{2*f}"))
    assert re.search(r"the TFLite model has 1 layer\(s\) with no row in the spec before this row: "
                     r"ADD #3 .*\(add \+ ReLU\)", out), out


def test_tensorflow_padding(vww, tmp_path):
    spec = variant(tmp_path, VWW_SPEC, "pad", (r"pad=same_tf", "pad=same"))
    out = fails_at(invoke("import", spec, vww[1], "-o", tmp_path / "x.npz"), spec, line_of(spec, "3x3x3x8"))
    assert "pads (top, left, bottom, right) = (0, 0, 1, 1) (TensorFlow SAME), the spec's row (1, 1, 1, 1)" in out
    assert "pad=same_tf" in out


def test_wrong_stride(vww, tmp_path):
    spec = variant(tmp_path, VWW_SPEC, "stride", (r"^conv dw / s2      3x3x16 dw", "conv dw / s1      3x3x16 dw"),
                   (r"^conv dw / s1      3x3x32 dw", "conv dw / s2      3x3x32 dw"))  # same shapes at the end
    out = fails_at(invoke("import", spec, vww[0], "-o", tmp_path / "x.npz"), spec, line_of(spec, "3x3x16 dw"))
    assert "this row has stride 1; the model's DEPTHWISE_CONV_2D" in out and "has stride 2" in out


def test_batchnorm_eps(vww, tmp_path):
    spec = variant(tmp_path, VWW_SPEC, "eps", (r"^defaults bn: eps=0.001.*$", ""))
    out = fails_at(invoke("import", spec, vww[1], "-o", tmp_path / "x.npz"), spec, line_of(spec, "3x3x3x8"))
    assert "eps=0.001, the spec's 1e-05" in out and "defaults bn: eps=0.001" in out


def test_activation(vww, tmp_path):
    spec = variant(tmp_path, VWW_SPEC, "relu6", (r"^after conv: bn relu", "after conv: bn relu6"))
    out = fails_at(invoke("import", spec, vww[1], "-o", tmp_path / "x.npz"), spec, line_of(spec, "3x3x3x8"))
    assert "the row's ReLU6, the model's Activation 'activation' (ReLU)" in out


def test_conv_bias_the_spec_lacks(models_dir, tmp_path):
    """bias=no on a row whose conv has a bias in the model and no BN to take it: a diagnostic."""
    spec = variant(tmp_path, RESNET_SPEC, "bias", (r"(1x1x\{f\}x\{2\*f\}\s+)after=none", r"\1after=none bias=no"))
    model = models_dir / "ic" / "pretrainedResnet.h5"
    out = fails_at(invoke("import", spec, model, "-o", tmp_path / "x.npz"), spec, line_of(spec, "bias=no"))
    assert "has a bias ('conv2d_5/conv2d_5/bias:0'); this row has none" in out and "bias=yes" in out


def test_folded_bias_goes_to_beta_when_the_conv_has_none(vww, tmp_path):
    """A PyTorch-style spec (conv bias=no, then BN) takes a folded .tflite: the bias becomes β."""
    from archdsl.importers import import_weights

    spec = variant(tmp_path, VWW_SPEC, "nobias", (r"pad=same_tf bias=yes", "pad=same_tf bias=no"),
                   drop_declared=False)
    graph = load_graph(spec)
    w = import_weights(graph, vww[0]).weights
    assert "conv1.conv.bias" not in w
    ref = import_weights(load_graph(VWW_SPEC), vww[0]).weights
    np.testing.assert_array_equal(w["conv1.bn.bias"], ref["conv1.conv.bias"])


# ---------------------------------------------------------------- files that are not float models


@pytest.mark.parametrize("spec, name", [(VWW_SPEC, "vww/vww_96_int8.tflite"),
                                        (RESNET_SPEC, "ic/pretrainedResnet_quant.tflite")])
def test_full_int8_tflite_writes_an_int8_weight_file(models_dir, tmp_path, spec, name):
    from archdsl.quant.weights_file import load_int8

    r = invoke("import", spec, models_dir / name, "-o", tmp_path / "x.npz")
    assert r.exit_code == 0, r.output
    assert "int8:" in r.output and "kept exactly" in r.output
    assert ".bn." not in r.output  # BN is folded into the int8 weights: no identity rows
    w = load_int8(tmp_path / "x.npz", load_graph(spec))
    assert w["conv1.conv.weight"].dtype == np.int8 and w["conv1.conv.bias"].dtype == np.int32
    again = invoke("import", spec, models_dir / name, "-o", tmp_path / "y.npz")
    assert again.exit_code == 0
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "y.npz").read_bytes()


def test_an_int8_model_is_not_loaded_as_float_weights(models_dir, tmp_path):
    assert invoke("import", VWW_SPEC, models_dir / "vww/vww_96_int8.tflite", "-o", tmp_path / "x.npz").exit_code == 0
    with pytest.raises(Exception) as e:
        load_weights(tmp_path / "x.npz", load_graph(VWW_SPEC))
    assert "do not match" in str(e.value)


@pytest.mark.parametrize("suffix, content, message", [
    (".tflite", b"not a flatbuffer at all", "is not a TFLite model"),
    (".h5", b"\x89HDF\r\n\x1a\nbroken", "is not an HDF5 file"),
    (".onnx", b"\xff\xff\xff garbage", "is not a readable ONNX model"),
    (".keras", b"PK", "unknown model file type '.keras'"),
    (".csv", b"a,b\n", "unknown model file type '.csv'"),
])
def test_unreadable_files_are_diagnostics(tmp_path, suffix, content, message):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    r = invoke("import", VWW_SPEC, path, "-o", tmp_path / "x.npz")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert message in r.output


def test_missing_file_and_wrong_output_name(tmp_path, vww):
    r = invoke("import", VWW_SPEC, tmp_path / "nothere.tflite", "-o", tmp_path / "x.npz")
    assert r.exit_code == 1 and "no such model file" in r.output
    r = invoke("import", VWW_SPEC, vww[0], "-o", tmp_path / "x.pt")
    assert r.exit_code == 1 and "the weights are written as .npz" in r.output


def test_model_for_another_input_size(models_dir, tmp_path):
    r = invoke("import", VWW_SPEC, models_dir / "ic" / "pretrainedResnet.h5", "-o", tmp_path / "x.npz")
    assert r.exit_code == 1
    assert "the Keras .h5 model's input is 32x32x3, the spec's is 96x96x3" in r.output


def test_a_weights_only_h5_is_explained(tmp_path):
    import h5py

    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv2d"]
    r = invoke("import", VWW_SPEC, path, "-o", tmp_path / "x.npz")
    assert r.exit_code == 1 and "has no model configuration" in r.output and "model.save" in r.output


def test_importing_a_tflite_never_imports_torch_or_onnx(vww, tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from archdsl.cli import app\n"
        f"r = CliRunner().invoke(app, ['import', {str(VWW_SPEC)!r}, {str(vww[0])!r}, '-o', "
        f"{str(tmp_path / 'w.npz')!r}, '-q'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'h5py'))\n"
        "print(' '.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"imported: {out.strip()}"


@pytest.mark.parametrize("name, size", [("vww/vww_96_float.tflite", 5000), ("vww/vww_96.h5", 200_000)])
def test_truncated_files_are_diagnostics(models_dir, tmp_path, name, size):
    path = tmp_path / name.split("/")[-1]
    path.write_bytes((models_dir / name).read_bytes()[:size])
    r = invoke("import", VWW_SPEC, path, "-o", tmp_path / "x.npz")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert re.search(r"error: (cannot read|.* is not an HDF5 file)", r.output), r.output
