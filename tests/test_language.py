"""The language's constructs: what each one elaborates to."""
from __future__ import annotations

import pytest

from archdsl.analysis.costs import totals
from archdsl.errors import ArchError
from conftest import parse_text

HEAD = "network t(alpha = 1.0, rho = 1.0, classes = 10)\ninput 32x32x3\n"


def shapes(graph):
    return [(n.name, str(n.out_shape)) for n in graph.nodes]


def test_x_and_times_sign_and_spaces_are_the_same():
    a = parse_text(HEAD + "conv / s2 3x3x3x16\n")
    b = parse_text(HEAD + "conv / s2 3 × 3 × 3 × 16\n")
    assert shapes(a) == shapes(b) == [("conv1", "16x16x16")]


def test_comments_and_blank_lines_are_ignored():
    g = parse_text("# a comment\n\n" + HEAD + "\n# another\nconv / s2 3x3x3x16   # trailing\n\n")
    assert shapes(g) == [("conv1", "16x16x16")]


def test_repeat_applies_stride_to_first_copy_only():
    g = parse_text(HEAD + "3x {\n  conv / s2 3x3x{in.c}x8\n}\n")
    assert [str(n.out_shape) for n in g.nodes] == ["16x16x8", "16x16x8", "16x16x8"]


def test_row_option_n_repeats_a_row():
    g = parse_text(HEAD + "conv / s2 3x3x{in.c}x8 n=3\n")
    assert [n.name for n in g.nodes] == ["conv1", "conv2", "conv3"]
    assert [str(n.out_shape) for n in g.nodes] == ["16x16x8"] * 3


def test_after_applies_to_conv_and_conv_dw_and_the_specific_rule_wins():
    g = parse_text(HEAD + "after conv: bn relu\nafter conv dw: bn relu6\n"
                   "conv 3x3x3x8\nconv dw 3x3x8 dw\n")
    assert [(n.name, n.op.name) for n in g.nodes] == [
        ("conv1.conv", "conv"), ("conv1.bn", "bn"), ("conv1.relu", "relu"),
        ("dw1.dw", "conv dw"), ("dw1.bn", "bn"), ("dw1.relu6", "relu6")]


def test_after_option_overrides_the_default():
    g = parse_text(HEAD + "after conv: bn relu\nconv 1x1x3x8 after=bn\nconv 1x1x8x8 after=none\n")
    assert [n.name for n in g.nodes] == ["conv1.conv", "conv1.bn", "conv2"]


def test_bn_options_in_after_lines():
    g = parse_text(HEAD + "after conv: bn eps=0.001 relu\nconv 1x1x3x8\n")
    assert g.node("conv1.bn").attrs.eps == pytest.approx(1e-3)


@pytest.mark.parametrize("rule, alpha, expected", [
    ("floor", 0.3, 9),  # int(32 * 0.3) = int(9.6)
    ("nearest", 0.3, 10),  # round(9.6)
    ("divisible(8)", 0.3, 16),  # make_divisible(9.6, 8): 8 is below 90% of 9.6, so 16
    ("divisible(8)", 0.5, 16),
    ("divisible(4)", 0.3, 12),
])
def test_width_rounding_rules(rule, alpha, expected):
    g = parse_text(f"network t(alpha = 1.0)\ninput 32x32x3\nwidth alpha round {rule}\nconv 3x3x3x32\n",
                   alpha=alpha)
    assert g.nodes[0].out_shape.c == expected


def test_alpha_spares_image_channels_classes_and_input_relative_counts():
    spec = (HEAD + "width alpha\nconv / s2 3x3x3x32\nconv 1x1x32x{in.c * 2}\nconv 1x1x64x{classes} width=fixed\n"
            "global avg pool\nfc 10x{classes}\n")
    g = parse_text(spec, alpha=0.5)
    assert g.node("conv1").in_shapes[0].c == 3  # the image keeps its 3 channels
    assert g.node("conv1").out_shape.c == 16  # scaled
    assert g.node("conv2").out_shape.c == 32  # {in.c * 2} is computed from an already scaled input
    assert g.node("conv3").out_shape.c == 10  # width=fixed
    assert g.node("fc1").out_shape.c == 10  # the class count is never scaled


def test_rho_rounds_half_up():
    g = parse_text("network t(rho = 1.0)\ninput 224x224x3\nresolution rho\nconv 1x1x3x8\n", rho=0.714)
    assert g.input_shape.h == g.input_shape.w == 160  # 224 * 0.714 = 159.94


def test_set_accepts_expression_values_via_cli_parser():
    from archdsl.cli import parse_sets

    assert parse_sets(["rho=192/224", "alpha=0.5", "nl=relu"]) == {"rho": 192 / 224, "alpha": 0.5, "nl": "relu"}


def test_blocks_bind_parameters_and_stride():
    spec = HEAD + """after conv: bn relu6
block bottleneck(t, c, s=1) {
  conv 1x1x{in.c}x{in.c * t}
  conv dw / s{s} 3x3x{in.c} dw
  conv 1x1x{in.c}x{c}  after=bn
}
conv / s1 3x3x3x16
bottleneck t=6 c=24 s=2 n=2
"""
    g = parse_text(spec)
    assert g.node("bottleneck1.dw1.dw").out_shape.h == 16  # s=2 on the first copy
    assert g.node("bottleneck2.dw1.dw").out_shape.h == 16  # s=1 on the second
    assert g.node("bottleneck1.conv1.conv").out_shape.c == 96
    assert g.node("bottleneck2.conv2.conv").out_shape.c == 24
    assert [n.op.name for n in g.nodes if n.name.startswith("bottleneck1.conv2")] == ["conv", "bn"]


def test_block_stride_row_syntax_sets_s():
    spec = HEAD + "block down(c, s=1) {\n  conv / s{s} 3x3x{in.c}x{c}\n}\ndown / s2 c=8\n"
    assert parse_text(spec).output_shape.h == 16


def test_residual_identity_and_projection():
    spec = HEAD + """conv 3x3x3x16
residual {
  conv 3x3x16x16
}
residual {
  conv / s2 3x3x16x32
  shortcut {
    conv / s2 1x1x16x32
  }
}
"""
    g = parse_text(spec)
    add1, add2 = g.node("residual1.add"), g.node("residual2.add")
    assert add1.inputs == ("residual1.conv1", "conv1")
    assert add2.inputs == ("residual2.conv1", "residual2.shortcut.conv1")
    assert str(add2.out_shape) == "16x16x32"


def test_residual_shortcut_auto_follows_mobilenet_v2():
    spec = HEAD + "conv 3x3x3x16\nresidual shortcut=auto {\n  conv / s{s} 1x1x16x16\n}\n"
    same = parse_text(spec.replace("{s}", "1"))
    strided = parse_text(spec.replace("{s}", "2"))
    assert any(n.op.name == "add" for n in same.nodes)
    assert not any(n.op.name == "add" for n in strided.nodes)


def test_scale_is_a_gate_multiply():
    spec = HEAD + """conv 3x3x3x16
scale {
  global avg pool
  conv 1x1x16x4 after=relu
  conv 1x1x4x16 after=hsigmoid
}
"""
    g = parse_text(spec)
    mul = g.node("scale1.mul")
    assert mul.inputs[0] == "conv1" and str(mul.out_shape) == "32x32x16"
    assert str(g.shape_of(mul.inputs[1])) == "1x1x16"


def test_concat_sums_rounded_branch_channels():
    spec = ("network t(alpha = 1.0)\ninput 32x32x3\nwidth alpha round floor\n"
            "concat {\n  branch {\n    conv 1x1x3x10\n  }\n  branch {\n    conv 3x3x3x7\n  }\n}\n")
    g = parse_text(spec, alpha=0.5)
    assert g.output_shape.c == 5 + 3  # int(10 * .5) + int(7 * .5): the sum of rounded inputs


def test_if_option_skips_rows():
    spec = "network t(se = 0)\ninput 8x8x4\nconv 1x1x4x4\nscale if={se} {\n  global avg pool\n  conv 1x1x4x4\n}\n"
    assert not any(n.op.name == "mul" for n in parse_text(spec).nodes)
    assert any(n.op.name == "mul" for n in parse_text(spec, se=1).nodes)


def test_global_pool_follows_resolution():
    spec = "network t(rho = 1.0)\ninput 32x32x3\nresolution rho\nconv / s2 3x3x3x8\navg pool 16x16 global\n"
    assert str(parse_text(spec, rho=0.5).output_shape) == "1x1x8"
    with pytest.raises(ArchError):
        parse_text(spec.replace(" global", ""), rho=0.5)


def test_declared_shapes_are_checked_at_defaults_even_when_overridden():
    bad = HEAD + "conv / s2 3x3x3x16 @ 32x32x3\nconv 1x1x16x8 @ 8x8x16\n"
    with pytest.raises(ArchError, match="declared input 8x8x16, inferred 16x16x16"):
        parse_text(bad, alpha=0.5)
    good = HEAD + "width alpha\nconv / s2 3x3x3x16 @ 32x32x3\nconv 1x1x16x8 @ 16x16x16\n"
    assert parse_text(good, alpha=0.5).output_shape.c == 4  # declared 16 channels, 8 at α = .5


@pytest.mark.parametrize("pad, size, expected", [("same", 32, 16), ("valid", 32, 15), ("same_tf", 32, 16),
                                                 ("same_tf", 31, 16), (0, 33, 16)])
def test_padding_modes(pad, size, expected):
    g = parse_text(f"network t(a = 1)\ninput {size}x{size}x3\nconv / s2 3x3x3x4 pad={pad}\n")
    assert g.output_shape.h == expected


def test_same_tf_pads_after_on_even_inputs():
    g = parse_text("network t(a = 1)\ninput 32x32x3\nconv / s2 3x3x3x4 pad=same_tf\n")
    assert g.nodes[0].attrs.pads == (0, 0, 1, 1)


def test_node_names_count_per_kind_and_name_option():
    g = parse_text(HEAD + "conv 3x3x3x8\nconv dw 3x3x8 dw\nconv 1x1x8x8 name=head\nconv dw 3x3x8 dw\n")
    assert [n.name for n in g.nodes] == ["conv1", "dw1", "head", "dw2"]


def test_paper_labels_and_bare_input_size_are_accepted():
    g = parse_text("network t(a = 1)\ninput 7x7x8\nAvg Pool / s1 Pool 7 × 7 7 × 7 × 8\n"
                   "FC / s1 8 × 10 1 × 1 × 8\nSoftmax / s1 Classifier 1 × 1 × 10\n")
    assert [n.op.name for n in g.nodes] == ["avg pool", "fc", "softmax"]


def test_params_conventions_on_a_small_net():
    g = parse_text(HEAD + "after conv: bn relu\nconv 3x3x3x8\nglobal avg pool\nfc 8x10\n")
    t = totals(g)
    assert t["params"] == 3 * 3 * 3 * 8 + 8 * 10
    assert t["params_with_bias"] == t["params"] + 10
    assert t["params_with_bn"] == t["params_with_bias"] + 2 * 8
    assert t["params_keras"] == t["params_with_bn"] + 2 * 8
    assert t["params_folded"] == t["params"] + 8 + 10  # folded conv bias + fc bias


def test_defaults_set_options_for_an_op_family_and_rows_override():
    g = parse_text("network t(a = 1)\ninput 32x32x3\ndefaults conv: pad=same_tf bias=yes\ndefaults bn: eps=0.001\n"
                   "after conv: bn relu\nconv / s2 3x3x3x8\nconv dw / s2 3x3x8 dw\nconv 1x1x8x8 pad=valid bias=no\n")
    assert g.node("conv1.conv").attrs.pads == (0, 0, 1, 1) and g.node("conv1.conv").attrs.bias
    assert g.node("dw1.dw").attrs.pads == (0, 0, 1, 1) and "bias" in g.node("dw1.dw").params
    assert g.node("conv2.conv").attrs.pads == (0, 0, 0, 0) and not g.node("conv2.conv").attrs.bias
    assert all(n.attrs.eps == 0.001 for n in g.nodes if n.op.name == "bn")


MBCONV = """network t(alpha = 1.0)
input 16x16x24
block mbconv(t, c, s = 1) {
  conv / s1        1x1x{in.c}x{in.c * t}
  conv dw / s{s}   3x3x{in.c} dw
  scale {
    global avg pool
    conv 1x1x{in.c}x{max(1, block.in.c // 4)}   after=relu
    conv 1x1x{in.c}x{block.in.c * t}            after=sigmoid
  }
  conv / s1        1x1x{in.c}x{c}
}
mbconv t=6 c=40 s=2
mbconv t=4 c=16
"""


def test_block_in_names_the_enclosing_blocks_input_inside_nested_bodies():
    g = parse_text(MBCONV)
    # EfficientNet's squeeze: a quarter of the block's input (24, then 40), not of the expansion.
    assert g.node("mbconv1.scale1.conv1.conv").out_shape.c == 6
    assert g.node("mbconv1.scale1.conv2.conv").out_shape.c == 144
    assert g.node("mbconv2.scale1.conv1.conv").out_shape.c == 10
    assert g.node("mbconv2.scale1.conv2.conv").out_shape.c == 160
    assert g.nodes[-1].out_shape.c == 16


def test_block_in_is_already_width_scaled():
    g = parse_text(MBCONV.replace("input 16x16x24\n", "input 16x16x24\nwidth alpha\n"), alpha=0.5)
    # block.in.c is read from the (scaled) input, so α does not apply to it a second time.
    assert g.node("mbconv2.scale1.conv1.conv").out_shape.c == 20 // 4


def test_block_in_outside_a_block_is_a_diagnostic():
    with pytest.raises(ArchError) as e:
        parse_text(HEAD + "conv 1x1x3x{block.in.c}\n")
    assert "'block.in.c' is only defined inside a block" in e.value.render()
    assert "test.arch:3:13" in e.value.render()  # at `block`, after the brace


def test_unknown_attribute_names_both_input_forms():
    with pytest.raises(ArchError) as e:
        parse_text(HEAD + "conv 1x1x3x{block.c}\n")
    assert "unknown name 'block.c'" in e.value.render() and "block.in.c" in e.value.render()
