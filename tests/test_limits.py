"""Every size and depth a spec can write is bounded, with a diagnostic at the offending token
(archdsl/limits.py): nothing a user writes ends in a traceback, a hang or an allocation."""
from __future__ import annotations

import time

import pytest

from archdsl.analysis.costs import totals
from archdsl.errors import ArchError
from archdsl.limits import MAX_EXPR_DEPTH, MAX_LAYERS, MAX_NESTING, MAX_SIZE
from conftest import parse_text

HEAD = "network t(alpha = 1.0)\ninput 8x8x3\n"


def error_of(text: str, **sets) -> str:
    with pytest.raises(ArchError) as e:
        parse_text(text, **sets)
    return e.value.render()


def channels(expr: str) -> int:
    return parse_text(HEAD + f"conv 1x1x3x{{{expr}}}\n").nodes[-1].out_shape.c


# ---------------------------------------------------------------- expressions

@pytest.mark.parametrize("expr, value", [
    ("2**3", 8), ("2 ** 3", 8), ("2**3**2", 512), ("-2**2 + 8", 4), ("4**0.5 * 3", 6), ("2**-1 * 16", 8),
])
def test_power_is_implemented(expr, value):
    assert channels(expr) == value


@pytest.mark.parametrize("expr", ["2**10**10", "10**19", "9**9**9", "2**64"])
def test_huge_powers_are_refused_before_they_are_computed(expr):
    start = time.perf_counter()
    err = error_of(HEAD + f"conv 1x1x3x{{{expr}}}\n")
    assert time.perf_counter() - start < 5  # 2**10**10 would take minutes and gigabytes
    assert "number too large" in err and "test.arch:3:" in err


def test_negative_number_to_a_fractional_power_is_an_error_not_a_complex_number():
    assert "negative number to a fractional power" in error_of(HEAD + "conv 1x1x3x{(-8)**0.5}\n")


@pytest.mark.parametrize("text", ["{round(1e999)}", "1e999", "{1e400 * 0}", "{100000000000000000000}"])
def test_literals_beyond_the_limit_are_refused_at_the_literal(text):
    err = error_of(HEAD + f"conv 1x1x3x8 groups={text}\n")
    assert "is too large" in err and "test.arch:3:" in err


def test_arithmetic_overflow_is_a_diagnostic():
    assert "number too large" in error_of(HEAD + "conv 1x1x3x{1e18 * 1e18}\n")
    assert "number too large" in error_of(HEAD + "conv 1x1x3x{1000000000 * 1000000000 * 10}\n")


def test_a_thousand_term_sum_is_one_flat_node():
    assert channels(" + ".join(["1"] * 1000)) == 1000
    assert channels(" - ".join(["3000"] + ["1"] * 2000)) == 1000


def test_thousands_of_parentheses_parse():
    assert channels("(" * 3000 + "8" + ")" * 3000) == 8


@pytest.mark.parametrize("expr", ["-" * 3000 + "8", "abs(" * 500 + "8" + ")" * 500, "not " * 500 + "1",
                                  "2**" * 300 + "1", "-(" * 1000 + "8" + ")" * 1000])
def test_deep_expressions_are_a_diagnostic(expr):
    err = error_of(HEAD + f"conv 1x1x3x{{{expr}}}\n")
    assert f"expression nests more than {MAX_EXPR_DEPTH} levels deep" in err and "test.arch:3:" in err


def test_nesting_within_the_limit_evaluates():
    assert channels("-" * (MAX_EXPR_DEPTH - 2) + "8") == 8  # an even number of minus signs


def test_divisible_by_zero_is_an_error():
    assert "bad arguments to divisible()" in error_of(HEAD + "conv 1x1x3x{divisible(20, 0)}\n")
    assert "bad arguments to divisible()" in error_of(HEAD + "conv 1x1x3x{divisible(20, 2.5)}\n")


@pytest.mark.parametrize("arg", ["0", "2.5"])
def test_round_divisible_zero_is_an_error_not_divisible_8(arg):
    err = error_of(HEAD + f"width alpha round divisible({arg})\nconv 1x1x3x32\n")
    assert "divisible() needs a whole divisor of at least 1" in err and "test.arch:3:19" in err


# ---------------------------------------------------------------- sizes

def test_huge_repeat_count_is_refused_at_the_count():
    start = time.perf_counter()
    err = error_of(HEAD + "1000000000000x {\n  relu\n}\n")
    assert time.perf_counter() - start < 5
    assert f"repeat count 1,000,000,000,000 is more than the limit of {MAX_LAYERS:,} layers" in err
    assert "test.arch:3:1" in err


def test_an_empty_body_repeated_a_trillion_times_does_not_loop():
    err = error_of(HEAD + "1000000000000x {\n}\nrelu\n")
    assert "repeat count" in err


def test_nested_repeats_that_multiply_past_the_layer_limit_are_refused_at_the_outer_count():
    err = error_of(HEAD + "300x {\n  300x {\n    relu\n  }\n}\n")
    assert f"300x makes 90,000 layers, more than the limit of {MAX_LAYERS:,}" in err and "test.arch:3:1" in err


def test_row_count_n_is_bounded():
    err = error_of(HEAD + "relu n=1000000000\n")
    assert "n= 1,000,000,000 is more than the limit" in err and "test.arch:3:8" in err
    err = error_of(HEAD + "block b() {\n  relu\n  relu\n}\nb n=15000\n")
    assert "n=15000 makes 30,000 layers" in err


@pytest.mark.parametrize("row, what", [
    ("conv 1x1x3x3000000000", "filter dimension 3,000,000,000"),
    ("conv / s3000000000 1x1x3x8", "stride 3,000,000,000"),
])
def test_written_sizes_are_bounded_at_their_token(row, what):
    err = error_of(HEAD + row + "\n")
    assert f"{what} is larger than the limit of {MAX_SIZE:,}" in err and "test.arch:3:" in err


def test_input_sizes_are_bounded():
    err = error_of("network t()\ninput 8x8x3000000000\nrelu\n")
    assert "input 3,000,000,000 is larger than the limit" in err and "test.arch:2:11" in err


def test_a_multiplier_that_makes_a_layer_too_large_is_reported_at_the_row():
    err = error_of(HEAD + "width alpha\nconv 1x1x3x32\n", alpha=1e17)
    assert "this row outputs 8x8x3200000000000000000, larger than the limit" in err and "test.arch:4:1" in err


def test_set_values_beyond_the_limit_are_a_cli_error_not_a_traceback():
    from typer.testing import CliRunner

    from archdsl.cli import app
    from conftest import SPECS

    result = CliRunner().invoke(app, ["stats", str(SPECS / "mobilenet_v1.arch"), "--set", "alpha=1e999"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "number 1e999 is too large" in result.output


def test_stats_on_a_huge_but_valid_network_is_numbers_not_allocations():
    spec = ("network huge(classes = 100000)\ninput 100000x100000x3\n"
            "conv / s2 3x3x3x4096\nconv dw / s1 3x3x4096 dw\nglobal avg pool\nfc 4096x{classes}\n")
    start = time.perf_counter()
    t = totals(parse_text(spec))
    assert time.perf_counter() - start < 5  # a tensor of this network would be 10^14 floats
    # independent: 50000x50000 outputs; 3x3x3 and 3x3 windows; fc 4096 -> 100000
    assert t["macs"] == 50000 * 50000 * 4096 * (27 + 9) + 4096 * 100000


# ---------------------------------------------------------------- nesting

def nested(kind: str, depth: int) -> str:
    opening = {"repeat": "1x {", "residual": "residual {", "scale": "scale {"}[kind]
    lines = [("  " * i) + opening for i in range(depth)]
    lines.append("  " * depth + ("conv 1x1x3x3" if kind != "scale" else "global avg pool"))
    lines += [("  " * i) + "}" for i in reversed(range(depth))]
    return HEAD + "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["repeat", "residual"])
def test_deep_nesting_is_a_diagnostic_not_a_recursion_error(kind):
    err = error_of(nested(kind, 120))
    assert f"bodies nest more than {MAX_NESTING} levels deep here" in err
    assert f"test.arch:{3 + MAX_NESTING}:" in err  # the first body beyond the limit
    assert "does a block use itself" not in err


@pytest.mark.parametrize("kind", ["repeat", "residual"])
def test_nesting_up_to_the_limit_elaborates(kind):
    assert parse_text(nested(kind, MAX_NESTING)).nodes


def test_a_chain_of_blocks_deeper_than_the_limit_is_a_diagnostic():
    blocks = [f"block b{i}() {{\n  b{i + 1}\n}}\n" for i in range(100)] + ["block b100() {\n  relu\n}\n"]
    err = error_of(HEAD + "".join(blocks) + "b0\n")
    assert f"bodies nest more than {MAX_NESTING} levels deep here" in err


def test_a_block_using_itself_is_reported_at_the_row_that_uses_it():
    err = error_of(HEAD + "block a() {\n  relu\n  a\n}\na\n")
    assert "test.arch:5:3: error: block 'a' uses itself" in err
    assert "test.arch:3:7: note: block 'a' is defined here" in err


def test_mutual_block_recursion_names_the_blocks_not_line_1():
    err = error_of(HEAD + "block a() {\n  b\n}\nblock b() {\n  a\n}\na\n")
    assert "test.arch:7:3: error: block 'a' uses itself (through b)" in err
    assert "test.arch:1:1" not in err
    assert "test.arch:4:3: note: 'b' is used here" in err


def test_deeply_nested_text_never_reaches_a_recursion_error_in_the_cli(tmp_path):
    from typer.testing import CliRunner

    from archdsl.cli import app

    path = tmp_path / "deep.arch"
    path.write_text(nested("residual", 400))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output and "RecursionError" not in result.output
    assert "levels deep" in result.output


def test_the_language_doc_lists_the_limits_archdsl_enforces():
    from archdsl import limits
    from conftest import ROOT

    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8").split("## Limits")[1]
    assert f"{limits.MAX_SIZE:,}" in doc and f"{limits.MAX_LAYERS:,}" in doc and f"{limits.MAX_SWEEP:,}" in doc
    assert f"| {limits.MAX_EXPR_DEPTH} levels" in doc and f"| {limits.MAX_NESTING} levels" in doc
    assert f"| {limits.MAX_ERRORS} |" in doc and limits.MAX_VALUE == 10**18 and "10^18" in doc


def test_a_sweep_beyond_the_limit_is_refused_up_front():
    from typer.testing import CliRunner

    from archdsl.cli import app
    from conftest import SPECS

    values = ",".join(str(1 - i / 1000) for i in range(300))
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["stats", str(SPECS / "mobilenet_v1.arch"), "--sweep", f"alpha={values}",
                                      "--sweep", f"rho={values}"])
    assert time.perf_counter() - start < 10
    assert result.exit_code == 1 and "300 x 300 = 90,000 combinations, more than the limit" in result.output


# ---------------------------------------------------------------- fuzzing expressions

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ATOMS = st.sampled_from(["0", "1", "2", "10", "1e18", "1e308", "0.5", "in.c", "block.in.c", "alpha", "x",
                          "99999999999999999999"])
_OPS = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "<", "==", " and ", " or "])


@st.composite
def expression(draw, depth=0):
    if depth > 3 or draw(st.booleans()):
        return draw(_ATOMS)
    kind = draw(st.sampled_from(["bin", "neg", "call", "paren", "chain"]))
    if kind == "bin":
        return draw(expression(depth + 1)) + draw(_OPS) + draw(expression(depth + 1))
    if kind == "neg":
        return "-" * draw(st.integers(1, 150)) + draw(expression(depth + 1))
    if kind == "call":
        fn = draw(st.sampled_from(["round", "floor", "ceil", "int", "abs", "max", "min", "divisible", "width"]))
        return f"{fn}({', '.join(draw(st.lists(expression(depth + 1), min_size=0, max_size=3)))})"
    if kind == "paren":
        n = draw(st.integers(1, 200))
        return "(" * n + draw(expression(depth + 1)) + ")" * n
    return draw(_OPS).join(draw(st.lists(expression(depth + 1), min_size=2, max_size=400)))


@settings(max_examples=100, deadline=None)
@given(expression())
def test_any_expression_is_a_value_or_a_diagnostic(expr):
    text = HEAD + f"width alpha\nconv 1x1x3x{{{expr}}}\nconv / s{{{expr}}} 1x1x{{in.c}}x8 pad={{{expr}}}\n"
    try:
        parse_text(text)
    except ArchError as e:
        assert e.render()
