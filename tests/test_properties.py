"""Property tests.

1. Random valid specs agree with an equivalent PyTorch model, built here directly from torch.nn
   (independently of archdsl's own torch target), on every row's output shape and on the
   parameter counts (torch parameters = weights + biases + BN γ/β; torch buffers = BN statistics).
2. Random text, and random mutations of a valid spec, never produce anything but an ArchError.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archdsl.analysis.costs import layer_costs, totals
from archdsl.errors import ArchError
from conftest import SPECS, parse_text

torch = pytest.importorskip("torch")
nn = torch.nn


@st.composite
def random_network(draw):
    """(spec text, list of torch modules per row, input shape (c, h, w))."""
    h = draw(st.integers(6, 40))
    w = draw(st.integers(6, 40))
    c = draw(st.integers(1, 6))
    lines = ["network random(a = 1)", f"input {h}x{w}x{c}"]
    rows = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["conv", "dw", "maxpool", "avgpool", "relu6"]))
        if kind in ("conv", "dw"):
            k = draw(st.sampled_from([1, 3, 5]))
            s = draw(st.sampled_from([1, 2]))
            pad = draw(st.sampled_from(["same", "valid"]))
            p = k // 2 if pad == "same" else 0
            if (h + 2 * p - k) < 0 or (w + 2 * p - k) < 0:
                continue
            bias = draw(st.booleans())
            post = draw(st.sampled_from(["", "bn", "bn+relu", "relu"]))
            cout = draw(st.integers(1, 12)) if kind == "conv" else c
            groups = 1 if kind == "conv" else c
            filt = f"{k}x{k}x{c}x{cout}" if kind == "conv" else f"{k}x{k}x{c} dw"
            op = "conv" if kind == "conv" else "conv dw"
            lines.append(f"{op} / s{s} {filt} @ {h}x{w}x{c} pad={pad} bias={'yes' if bias else 'no'} "
                         f"after={post or 'none'}")
            mods = [nn.Conv2d(c, cout, k, s, p, groups=groups, bias=bias)]
            if "bn" in post:
                mods.append(nn.BatchNorm2d(cout))
            if "relu" in post:
                mods.append(nn.ReLU())
            rows.append(nn.Sequential(*mods))
            h, w, c = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, cout
        elif kind in ("maxpool", "avgpool"):
            k = draw(st.integers(2, 3))
            if k > h or k > w:
                continue
            s = draw(st.integers(1, k))
            lines.append(f"{'max' if kind == 'maxpool' else 'avg'} pool / s{s} {k}x{k} @ {h}x{w}x{c}")
            rows.append((nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d)(k, s))
            h, w = (h - k) // s + 1, (w - k) // s + 1
        else:
            lines.append(f"relu6 @ {h}x{w}x{c}")
            rows.append(nn.ReLU6())
    if draw(st.booleans()):
        classes = draw(st.integers(1, 10))
        lines.append(f"global avg pool @ {h}x{w}x{c}")
        rows.append(nn.AdaptiveAvgPool2d(1))
        lines.append(f"fc {c}x{classes}")
        rows.append(nn.Sequential(nn.Flatten(), nn.Linear(c, classes)))
    return "\n".join(lines) + "\n", rows, (int(lines[1].split()[1].split("x")[2]),
                                           int(lines[1].split()[1].split("x")[0]),
                                           int(lines[1].split()[1].split("x")[1]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_network())
def test_random_specs_match_torch_shapes_and_param_counts(case):
    text, rows, (c, h, w) = case
    if not rows:
        return
    graph = parse_text(text)
    layers = layer_costs(graph)
    assert len(layers) == len(rows), text
    x = torch.zeros(1, c, h, w)
    with torch.no_grad():
        for layer, module in zip(layers, rows):
            x = module.eval()(x)
            out = tuple(x.shape[1:]) if x.dim() == 4 else (x.shape[1], 1, 1)
            assert out == layer.out_shape.chw, f"{text}\nrow {layer.name}: torch {out}, archdsl {layer.out_shape}"
    model = nn.Sequential(*rows)
    t = totals(graph)
    assert t["params_with_bn"] == sum(p.numel() for p in model.parameters()), text
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert t["params_keras"] - t["params_with_bn"] == stats, text


def _never_crashes(text: str) -> None:
    from archdsl.elaborate import elaborate
    from archdsl.syntax import parse

    try:
        graph = elaborate(parse(text, "fuzz.arch"))
        totals(graph)
    except ArchError as err:
        rendered = err.render()
        assert "error:" in rendered


SPEC_ALPHABET = st.sampled_from(list("abcdefgilnoprstuwxv ×{}()[]@/=+-*.,:#0123456789\n\t") +
                                ["conv", "dw", "network", "input", "width", "after", "block", "residual",
                                 "scale", "concat", "branch", "5x", "3x3x3x8", "{in.c}", "round", "\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(SPEC_ALPHABET, max_size=60).map("".join))
def test_random_text_never_gives_a_traceback(text):
    _never_crashes(text)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_specs_never_give_a_traceback(data):
    source = (SPECS / "mobilenet_v1.arch").read_text()
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(source)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = data.draw(SPEC_ALPHABET)
        if action == "delete":
            source = source[:pos] + source[pos + data.draw(st.integers(1, 12)):]
        elif action == "insert":
            source = source[:pos] + piece + source[pos:]
        else:
            source = source[:pos] + piece + source[pos + len(piece):]
    _never_crashes(source)
