"""Bad specs: one mistake per file in tests/diagnostics/, the expected diagnostic beside it.

Each NAME.arch is checked with `archdsl check` (plus the --set values in NAME.sets, if any);
stderr must equal NAME.expected and the exit code must be 1, with no traceback.
Regenerate after a deliberate wording change with UPDATE_SNAPSHOTS=1 and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archdsl.cli import app
from conftest import parse_text

HERE = Path(__file__).parent / "diagnostics"
CASES = sorted(p.stem for p in HERE.glob("*.arch"))


def run_check(name: str):
    args = ["check", f"{name}.arch"]
    sets = HERE / f"{name}.sets"
    if sets.exists():
        for line in sets.read_text().split():
            args += ["--set", line]
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        return CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name", CASES)
def test_diagnostic_snapshot(name):
    result = run_check(name)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    expected_path = HERE / f"{name}.expected"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        expected_path.write_text(result.stderr)
    assert result.stderr == expected_path.read_text(), result.stderr


def test_every_case_has_a_snapshot():
    missing = [n for n in CASES if not (HERE / f"{n}.expected").exists()]
    assert not missing, f"diagnostic cases without an expected file: {missing}"


def test_table1_typo_is_reported_on_the_right_rows():
    """The paper's Table 1 pasted verbatim: the s2 typo on the last depthwise row (line 26)
    is caught at the next row's declared input (line 27), and the note points at the stride."""
    err = run_check("table1_verbatim").stderr
    assert "table1_verbatim.arch:27:" in err and "declared input 7x7x1024, inferred 4x4x1024" in err
    assert "table1_verbatim.arch:26:" in err and "stride 2 on line 26" in err


def test_table1_verbatim_without_the_typo_is_mobilenet_v1():
    from archdsl.analysis.costs import totals
    from conftest import parse_text

    text = (HERE / "table1_verbatim.arch").read_text()
    fixed = text.replace("Conv dw / s2\t3 × 3 × 1024", "Conv dw / s1\t3 × 3 × 1024")
    assert fixed != text
    t = totals(parse_text(fixed))
    assert (t["macs"], t["params"]) == (568_740_352, 4_209_088)


# ---------------------------------------------------------------- messages that name the cause

def check_text(tmp_path, text: str, *sets: str):
    path = tmp_path / "t.arch"
    path.write_text(text)
    args = ["check", str(path)]
    for s in sets:
        args += ["--set", s]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    return result.stderr.replace(str(path), "t.arch")


HEAD = "network t(alpha = 1.0)\ninput 8x8x3\n"


@pytest.mark.parametrize("row, combinator", [("add", "residual"), ("mul", "scale")])
def test_ops_that_join_tensors_are_not_rows(tmp_path, row, combinator):
    err = check_text(tmp_path, HEAD + row + "\n")
    assert "joins tensors, so it is not a row of its own" in err and f"write `{combinator} {{ … }}`" in err


@pytest.mark.parametrize("text", ["conv 1x1x3x8 after=add\n", "conv 1x1x3x8 after=bn+mul\n",
                                  "after conv: bn add\nconv 1x1x3x8\n"])
def test_ops_that_join_tensors_cannot_follow_a_layer(tmp_path, text):
    err = check_text(tmp_path, HEAD + text)
    assert "joins tensors, so it cannot follow a layer" in err


def test_layer_type_list_names_only_what_a_row_can_be(tmp_path):
    err = check_text(tmp_path, HEAD + "qqqq\n")
    listed = [name.strip() for name in err.split("layer types:")[1].split(",")]
    assert "conv dw" in listed and "add" not in listed and "mul" not in listed


@pytest.mark.parametrize("text", ["conv 1x1x3x8 after=bn+swish\n", "swish\n", "after conv: bn swish\nconv 1x1x3x8\n"])
def test_swish_resolves_or_points_at_silu_never_at_hswish(tmp_path, text):
    from archdsl import ops

    if ops.lookup("swish") is not None:  # the registry knows swish as silu
        assert parse_text(HEAD + text).nodes
        return
    err = check_text(tmp_path, HEAD + text)
    assert "hswish'?" not in err and "'swish'" in err
    if ops.lookup("silu") is not None:
        assert "did you mean 'silu'?" in err
    else:
        assert "did you mean" not in err and "SiLU" in err


@pytest.mark.parametrize("name, ours", [("gelu", None), ("mish", None), ("hardsigmoid", "hsigmoid")])
def test_well_known_names_get_what_they_are_not_a_near_miss(tmp_path, name, ours):
    err = check_text(tmp_path, HEAD + f"conv 1x1x3x8 after=bn+{name}\n")
    if ours:
        assert f"did you mean '{ours}'? it is archdsl's name for {name}" in err
    else:
        assert "did you mean" not in err and "is not an archdsl op" in err


def test_a_block_named_like_a_function_is_reported_as_a_block_in_after(tmp_path):
    err = check_text(tmp_path, HEAD + "block gelu() {\n  relu\n}\nconv 1x1x3x8 after=bn+gelu\n")  # swish is silu now
    assert "'gelu' is a block, not an op in after=" in err and "did you mean" not in err
    assert "t.arch:3:7: note: block 'gelu' is defined here" in err


def test_typos_still_get_a_did_you_mean(tmp_path):
    assert "did you mean 'hswish'?" in check_text(tmp_path, HEAD + "conv 1x1x3x8 after=bn+hswsh\n")


@pytest.mark.parametrize("name, taken_by", [
    ("dense", "'dense', another name for the op 'fc'"), ("conv", "the op 'conv'"),
    ("residual", "the language's 'residual { }'"),
])
def test_a_taken_block_name_says_by_what(tmp_path, name, taken_by):
    err = check_text(tmp_path, HEAD + f"block {name}(k) {{\n  relu\n}}\n")
    assert f"block name '{name}' is already taken by {taken_by}" in err and "t.arch:3:7:" in err


def test_a_block_defined_twice_points_at_the_first(tmp_path):
    err = check_text(tmp_path, HEAD + "block b(k) {\n  relu\n}\nblock b() {\n  relu\n}\n")
    assert "already taken by another block" in err and "t.arch:3:7: note: block 'b' is defined here" in err


def test_wrong_padding_hint_names_kernel_stride_and_padding(tmp_path):
    err = check_text(tmp_path, "network t()\ninput 224x224x3\nconv / s2 3x3x3x8 pad=valid\nconv 1x1x8x8 @ 112x112x8\n")
    assert "declared input 112x112x8, inferred 111x111x8" in err
    assert "(224 + 0 + 0 - 3) // 2 + 1 = 111" in err and "3x3 window and padding 0" in err
    assert "'conv' pads same unless pad=" in err


def test_a_block_argument_that_breaks_a_shape_is_reported_at_the_calling_row_too(tmp_path):
    err = check_text(tmp_path, "network t()\ninput 32x32x16\nblock stage(c, s = 1) {\n  residual {\n"
                               "    conv / s{s} 3x3x{in.c}x{c}\n  }\n}\nstage c=16 n=2\nstage c=32 s=2 n=2\n")
    assert "t.arch:4:3: error: residual body gives 16x16x32, but the shortcut carries 32x32x16" in err
    assert "t.arch:9:1: note: in block 'stage' used here (copy 1 of n=2) with c=32 s=2" in err


def test_input_vector_suggests_1x1xc(tmp_path):
    err = check_text(tmp_path, "network t()\ninput 640\nfc 640x10\n")
    assert "t.arch:2:7: error: unexpected '640'" in err and "input 1x1x640" in err


TABLE = """network t(alpha = 1.0)
input 32x32x3
after conv: bn relu
conv / s2      3x3x3x16        @ 32x32x3
conv dww / s1  3x3x16 dw       @ 16x16x16
conv / s1      1x1x16x32       @ 16x16x16
conv / s1      1x1x32x{nope}   @ 16x16x32
conv dw / s2   3x3x64 dw       @ 16x16x64
conv / s1      1x1x64x64       @ 16x16x64
conv / s1      1x1x64x64  padd=same   @ 16x16x64
conv / s1      1x1x64x{3 **}   @ 16x16x64
global avg pool
fc 64x10
"""


def test_every_independent_error_of_a_run_is_reported(tmp_path):
    err = check_text(tmp_path, TABLE)
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert [ln.split(": error: ")[0] for ln in lines] == [
        "t.arch:5:1", "t.arch:7:24", "t.arch:9:34", "t.arch:10:27", "t.arch:11:26"], err  # rows 10, 11 agree with 9
    assert "unexpected word 'dww'" in lines[0] and "unknown name 'nope'" in lines[1]
    assert "declared input 16x16x64, inferred 8x8x64" in lines[2]  # the s2 typo on line 8, reported once
    assert "no option 'padd'" in lines[3] and "malformed expression" in lines[4]


def test_errors_after_the_first_are_not_cascades(tmp_path):
    # one unknown op: the rows after it (with no declared sizes to resync on) add no shape errors
    err = check_text(tmp_path, HEAD + "conv 1x1x3x16\nconvv 1x1x16x32\nconv 1x1x32x8\nconv 1x1x8x8\n")
    assert err.count(": error: ") == 1


def test_the_number_of_errors_is_capped(tmp_path):
    from archdsl.limits import MAX_ERRORS

    err = check_text(tmp_path, HEAD + "".join(f"conv 1x1x3x3 bogus{i}=1\n" for i in range(3 * MAX_ERRORS)))
    assert err.count(": error: ") == MAX_ERRORS + 1 and f"stopping after {MAX_ERRORS} errors" in err


@pytest.mark.parametrize("row", ["flatten bogus=1", "flatten bogus", "relu bogus=1"])
def test_every_row_op_refuses_options_it_does_not_take(tmp_path, row):
    err = check_text(tmp_path, HEAD + row + "\n")
    assert "has no option 'bogus'" in err or "unexpected word 'bogus'" in err


def test_every_syntax_error_of_a_text_is_reported(tmp_path):
    text = ("network t(alpha = 1.0)\ninput 32x32x3\nconv / s2 3x3x3x16 = 3\nconv 1x1x16x16 {x\nresidual {\n"
            "  conv 1x1x16x16 )\n  conv 1x1x16x16\n}\nconv @ @\nrelu\n")
    err = check_text(tmp_path, text)
    assert [ln.split(": error: ")[0] for ln in err.splitlines() if ": error: " in ln] == [
        "t.arch:3:20", "t.arch:4:17", "t.arch:6:18", "t.arch:9:8"], err


def test_an_unclosed_body_is_one_error(tmp_path):
    err = check_text(tmp_path, HEAD + "residual {\n  relu\n")
    assert err.count(": error: ") == 1 and "unexpected end of file" in err
