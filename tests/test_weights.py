"""The weight format: seeded init, loading .npz / .pt / .onnx as untrusted input with
strict key and shape checks, deterministic .npz bytes, and BN folding (checked against
torch's unfused conv/linear + batch_norm)."""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_graph, parse_text, small_graph

from archdsl.analysis.schedule import schedule
from archdsl.errors import ArchError
from archdsl.weights import check_weights, fold_bn, init_weights, load_weights, npz_bytes, save_npz

torch.set_num_threads(1)

SPEC = """\
network folds(classes = 5)
input 9x8x3
conv / s2        3x3x3x8        pad=same_tf
bn eps=0.001
relu
conv dw / s1     3x3x8 dw       multiplier=2 bias=yes
bn
relu6
conv / s1        1x1x16x6       bias=yes
relu
residual {
  conv / s1      3x3x6x6        groups=2
}
flatten
fc               {in.c}x{classes}
bn
fc               {classes}x4    bias=no
softmax
"""


@pytest.fixture(scope="module")
def graph():
    return parse_text(SPEC)


@pytest.fixture(scope="module")
def weights(graph):
    return init_weights(graph, seed=0)


# ---------------------------------------------------------------- init


def test_init_covers_every_parameter_as_float32(graph, weights):
    specs = dict(graph.parameters())
    assert list(weights) == list(specs)
    for key, spec in specs.items():
        assert weights[key].shape == spec.shape and weights[key].dtype == np.float32, key
        assert weights[key].flags.c_contiguous


def test_init_is_seeded_and_deterministic(graph, weights):
    again = init_weights(parse_text(SPEC), seed=0)
    other = init_weights(graph, seed=1)
    for key in weights:
        np.testing.assert_array_equal(weights[key], again[key])
        assert not np.array_equal(weights[key], other[key]), key


def test_init_does_not_depend_on_other_layers():
    a = parse_text("network a()\ninput 8x8x3\nconv / s1 3x3x3x4\nbn\n")
    b = parse_text("network b()\ninput 8x8x3\nconv / s1 3x3x3x4\nbn\nconv / s1 1x1x4x4\n")
    wa, wb = init_weights(a, 3), init_weights(b, 3)
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key])


def test_init_values_are_stable_across_machines(graph, weights):
    # default_rng(PCG64) streams are portable; pin a few values so a change is noticed.
    assert float(weights["conv1.weight"].ravel()[0]) == pytest.approx(
        float(init_weights(graph, 0)["conv1.weight"].ravel()[0]), abs=0)
    rng = np.random.default_rng([0, __import__("zlib").crc32(b"conv1.weight")])
    expected = (rng.standard_normal(size=(8, 3, 3, 3)) * np.sqrt(2.0 / 27)).astype(np.float32)
    np.testing.assert_array_equal(weights["conv1.weight"], expected)


def test_init_scales_and_bn_statistics():
    """Each value is its draw times a power of √2 (weights) or of 2 (running_var): the draws keep
    their documented laws, the scale is whole octaves so the bytes are the same on every machine."""
    import zlib

    g = load_graph("mobilenet_v1.arch", alpha=0.5, rho=0.5)
    w = init_weights(g, 0)
    specs = dict(g.parameters())
    for key in ("conv14.conv.weight", "fc1.weight", "conv14.bn.running_var"):
        rng = np.random.default_rng([0, zlib.crc32(key.encode())])
        shape = specs[key].shape
        if key == "fc1.weight":
            draw = rng.uniform(-1 / np.sqrt(shape[1]), 1 / np.sqrt(shape[1]), size=shape)
        elif key.endswith("running_var"):
            draw = rng.uniform(0.5, 1.5, size=shape)
        else:
            draw = rng.standard_normal(size=shape) * np.sqrt(2.0 / shape[1])
        ratio = w[key].astype(np.float64) / draw
        octaves = np.log2(ratio) * (1 if key.endswith("running_var") else 2)
        assert np.allclose(octaves, np.round(octaves[0]), atol=1e-5), key
    assert np.abs(w["fc1.bias"]).max() <= 0.1
    for key, spec in g.parameters():
        if key.endswith("bn.weight"):
            assert 0.5 <= w[key].min() and w[key].max() <= 1.5, key
        if key.endswith("bn.weight") or key.endswith("running_var"):
            assert w[key].std() > 0.05 * w[key].mean(), f"{key} is not randomised"
        elif key.endswith("running_mean") or key.endswith("bn.bias"):
            assert w[key].std() > 0.01, key


# A MnasNet-A1-like network (Tan et al. 2019, Figure 7): inverted residuals with SE, hswish-free
# but deep (16 blocks, 10 residual sums), BN everywhere, linear bottlenecks. With He-normal alone
# its logits reached ~1e5 and the softmax was one-hot, so a target comparison proved nothing.
MNAS_LIKE = """\
network mnas_like(classes = 100)
input 64x64x3
after conv: bn relu
block mbconv(t, c, k=3, s=1, se=0) {
  residual shortcut=auto {
    conv / s1       1x1x{in.c}x{in.c * t}
    conv dw / s{s}  {k}x{k}x{in.c} dw
    scale if={se} {
      global avg pool
      conv / s1     1x1x{in.c}x{max(8, in.c / 4)}  bias=yes after=relu
      conv / s1     1x1x{in.c}x{block.in.c * t}    bias=yes after=sigmoid
    }
    conv / s1       1x1x{in.c}x{c}    after=bn
  }
}
conv / s2    3x3x3x32
conv dw / s1 3x3x32 dw
conv / s1    1x1x32x16     after=bn
mbconv / s2  t=6 c=24 n=2
mbconv / s2  t=3 c=40 k=5 se=1 n=3
mbconv / s2  t=6 c=80 n=4
mbconv / s1  t=6 c=112 se=1 n=2
mbconv / s2  t=6 c=160 k=5 se=1 n=3
mbconv / s1  t=6 c=320 n=1
conv / s1    1x1x320x1280
global avg pool
fc           1280x{classes}
softmax
"""


def _deep_cases():
    yield "mnas_like", parse_text(MNAS_LIKE)
    for spec in ("xception.arch", "mobilenet_v3_large.arch", "mobilenet_v3_small.arch", "resnet20_cifar.arch"):
        yield spec, small_graph(spec)


@pytest.mark.parametrize("name,graph", list(_deep_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_seeded_init_keeps_deep_networks_in_range(name, graph):
    """On a unit-variance input every layer's RMS stays within [0.02, 20], the logits' standard
    deviation within [0.2, 8] and no class takes the softmax (the tensors verify compares are
    informative). Before: Xception's logits ~1e7, MobileNetV3-Large's ~3e3, softmax one-hot."""
    from archdsl.backends.numpy_target import reference_forward

    x = np.random.default_rng(7).standard_normal((2, *graph.input_shape.chw)).astype(np.float32)
    out, layers = reference_forward(graph, init_weights(graph, 0), x, keep=True)
    softmax = [n for n in graph.nodes if n.op.name == "softmax"]
    logits = layers[softmax[-1].inputs[0]] if softmax else out
    for node in graph.nodes:
        if node is not graph.nodes[-1] or not softmax:
            rms = float(np.sqrt(np.mean(np.square(layers[node.name], dtype=np.float64))))
            assert 0.02 <= rms <= 20, f"{node.name} ({node.op.name}): RMS {rms:.3g}"
    assert 0.2 <= float(logits.std()) <= 8, f"logits std {logits.std():.3g}"
    if softmax:
        assert out.max() < 0.9, f"softmax max {out.max():.3g}: one-hot"


# ---------------------------------------------------------------- save


def test_save_npz_is_deterministic_and_round_trips(tmp_path, graph, weights):
    first = save_npz(weights, tmp_path / "a.npz").read_bytes()
    shuffled = dict(reversed(list(weights.items())))
    second = save_npz(shuffled, tmp_path / "b.npz").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.npz") as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == sorted(k + ".npy" for k in weights)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}  # no timestamp in the bytes
    back = load_weights(tmp_path / "a.npz", graph)
    for key in weights:
        np.testing.assert_array_equal(back[key], weights[key])


def test_npz_bytes_cast_to_float32():
    data = npz_bytes({"b": np.arange(3, dtype=np.float64), "a": np.ones((2, 2), np.float16)})
    with np.load(io.BytesIO(data)) as f:
        assert f.files == ["a", "b"] and f["b"].dtype == np.float32 and f["a"].dtype == np.float32


# ---------------------------------------------------------------- load


def test_load_pt_state_dict_ignores_num_batches_tracked(tmp_path, graph, weights):
    sd = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    sd["bn1.num_batches_tracked"] = torch.tensor(7)
    torch.save(sd, tmp_path / "w.pt")
    back = load_weights(tmp_path / "w.pt", graph)
    assert list(back) == list(weights)
    for key in weights:
        np.testing.assert_array_equal(back[key], weights[key])


def test_load_float64_and_float16_arrays_become_float32(tmp_path, graph, weights):
    np.savez(tmp_path / "w.npz", **{k: v.astype(np.float64) for k, v in weights.items()})
    back = load_weights(tmp_path / "w.npz", graph)
    assert all(v.dtype == np.float32 for v in back.values())


def test_load_onnx_initializers_by_name(tmp_path, graph, weights):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(v, name=k) for k, v in weights.items()]
    inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), name="flatten_shape"))  # not a weight
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y],
                                                initializer=inits))
    onnx.save(model, str(tmp_path / "w.onnx"))
    back = load_weights(tmp_path / "w.onnx", graph)
    for key in weights:
        np.testing.assert_array_equal(back[key], weights[key])


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pt_pickle_is_refused(tmp_path, graph, weights):
    marker = tmp_path / "pwned"
    sd = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    sd["conv1.weight"] = Payload(marker)
    torch.save(sd, tmp_path / "evil.pt")  # the zip format torch.save writes
    with open(tmp_path / "legacy.pt", "wb") as f:  # a bare pickle named .pt
        pickle.dump({"conv1.weight": Payload(marker)}, f, protocol=2)
    for name in ("evil.pt", "legacy.pt"):
        with pytest.raises(ArchError) as e:
            load_weights(tmp_path / name, graph)
        text = e.value.render()
        assert f"{name}: error: refused to load" in text and "weights_only" in text, text
    assert not marker.exists(), "unpickling ran code"


def test_malicious_npz_object_array_is_refused(tmp_path, graph, weights):
    marker = tmp_path / "pwned"
    arrays = dict(weights)
    arrays["conv1.weight"] = np.array([Payload(marker)], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(ArchError, match="pickled objects"):
        load_weights(tmp_path / "evil.npz", graph)
    assert not marker.exists()


def test_mismatch_lists_missing_unexpected_and_both_shapes(tmp_path, graph, weights):
    bad = dict(weights)
    del bad["conv1.weight"], bad["bn3.running_var"]
    bad["conv9.weight"] = np.zeros(3, np.float32)
    bad["fc1.weight"] = np.zeros((5, 7), np.float32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ArchError) as e:
        load_weights(tmp_path / "bad.npz", graph)
    text = e.value.render()
    assert "bad.npz: error: the weights do not match folds" in text
    assert "missing keys (2): conv1.weight, bn3.running_var" in text
    assert "unexpected keys (1): conv9.weight" in text
    want = weights["fc1.weight"].shape
    assert f"shape mismatch for fc1.weight: the file has (5, 7), the spec needs ({want[0]}, {want[1]})" in text


def test_integer_arrays_are_rejected(graph, weights):
    bad = dict(weights)
    bad["conv1.weight"] = bad["conv1.weight"].astype(np.int32)
    with pytest.raises(ArchError) as e:
        check_weights(bad, graph)
    assert "conv1.weight has dtype int32" in e.value.render()


@pytest.mark.parametrize("name,content,message", [
    ("w.npz", b"not a zip", "not a readable .npz file"),
    ("w.pt", b"\x00garbage", "not a readable PyTorch file"),
    ("w.onnx", b"\xff\xff\xff garbage", "not a readable ONNX model"),
    ("w.h5", b"", "unknown weight file type '.h5'"),
])
def test_unreadable_files_are_diagnostics(tmp_path, graph, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ArchError, match=message):
        load_weights(tmp_path / name, graph)


def test_missing_file_and_a_state_dict_of_non_tensors(tmp_path, graph):
    with pytest.raises(ArchError, match="no such weight file"):
        load_weights(tmp_path / "nope.npz", graph)
    torch.save({"conv1.weight": [1, 2, 3]}, tmp_path / "list.pt")
    with pytest.raises(ArchError, match="not a tensor"):
        load_weights(tmp_path / "list.pt", graph)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ArchError, match="not a state_dict"):
        load_weights(tmp_path / "tensor.pt", graph)


# ---------------------------------------------------------------- BN folding


def _t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def test_fold_bn_matches_unfused_torch(graph, weights):
    steps = schedule(graph)
    folded = fold_bn(graph, steps, weights)
    assert set(folded) == {s.main.name for s in steps if s.main.op.folds_bn}
    assert sum(s.bn is not None for s in steps) == 3  # conv, dw, fc fold; the residual's conv has none
    rng = np.random.default_rng(0)
    for step in steps:
        if not step.main.op.folds_bn:
            continue
        node = step.main
        x = _t(rng.standard_normal((2, *node.in_shapes[0].chw)))
        w = _t(weights[node.param_key("weight")])
        b = _t(weights[node.param_key("bias")]) if "bias" in node.params else None
        fw, fb = folded[node.name]
        assert fw.dtype == np.float32 and fb.dtype == np.float32 and fw.shape == w.shape
        if node.op.name == "fc":
            raw, fused = F.linear(x.flatten(1), w, b), F.linear(x.flatten(1), _t(fw), _t(fb))
        else:
            a = node.attrs
            t, l, bo, r = a.pads
            xp = F.pad(x, (l, r, t, bo))
            raw = F.conv2d(xp, w, b, a.stride, groups=a.groups)
            fused = F.conv2d(xp, _t(fw), _t(fb), a.stride, groups=a.groups)
        if step.bn is not None:
            bn = step.bn
            raw = F.batch_norm(raw, _t(weights[bn.param_key("running_mean")]),
                               _t(weights[bn.param_key("running_var")]), _t(weights[bn.param_key("weight")]),
                               _t(weights[bn.param_key("bias")]), training=False, eps=bn.attrs.eps)
        scale = raw.abs().max().item()
        np.testing.assert_allclose(fused.numpy(), raw.numpy(), rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=f"{node.name} (+{step.bn.name if step.bn else 'no bn'})")


def test_fold_without_bn_keeps_weights_and_zero_bias(graph, weights):
    folded = fold_bn(graph, schedule(graph), weights)
    w, b = folded["residual1.conv1"]
    np.testing.assert_array_equal(w, weights["residual1.conv1.weight"])
    np.testing.assert_array_equal(b, np.zeros(6, np.float32))
    w, b = folded["conv2"]  # bias=yes, no BN
    np.testing.assert_array_equal(b, weights["conv2.bias"])


def test_fold_uses_the_bn_eps(graph, weights):
    w2 = dict(weights)
    w2["bn1.running_var"] = np.zeros_like(w2["bn1.running_var"])  # only eps keeps the division finite
    fw, _ = fold_bn(graph, schedule(graph), w2)["conv1"]
    expected = weights["conv1.weight"].astype(np.float64) * (weights["bn1.weight"] / np.sqrt(0.001))[:, None, None, None]
    np.testing.assert_allclose(fw, expected, rtol=1e-6)
