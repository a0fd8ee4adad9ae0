"""Patch-based execution and in-place depthwise: the plans (analysis.patch, analysis.memory) and
their reference meaning (backends/numpy_patch.py), checked against the untiled reference run."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from archdsl.analysis import patch
from archdsl.analysis.memory import plan_memory
from archdsl.analysis.schedule import schedule
from archdsl.backends.numpy_patch import patched_forward
from archdsl.backends.numpy_target import reference_forward
from archdsl.errors import ArchError
from archdsl.weights import init_weights
from conftest import all_specs, assert_no_overlap, load_graph, parse_text, small_graph


def _upto(graph, tensor):
    """The graph cut after the node that makes `tensor` (so the reference runs only the prefix)."""
    names = [n.name for n in graph.nodes]
    nodes = graph.nodes[:names.index(tensor) + 1]
    return dataclasses.replace(graph, nodes=nodes, output=tensor, _by_name={})


def _input(graph, seed=0):
    return np.random.default_rng(seed).standard_normal((2, *graph.input_shape.chw)).astype(np.float32)


def _check_plan(graph, plan, steps, seed=0):
    """The prefix output, tiled, equals the untiled reference (both float64, cast to float32)."""
    weights = init_weights(graph, seed=seed)
    cut = _upto(graph, plan.output)
    x = _input(graph, seed)
    want, _ = reference_forward(cut, weights, x)
    got = patched_forward(cut, weights, x, plan, steps[:plan.prefix])
    scale = float(np.abs(want).max()) or 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale,
                               err_msg=f"{graph.name}: {plan.grid} tiles up to {plan.output}")


@pytest.mark.parametrize("spec", all_specs(), ids=lambda p: p.stem)
def test_every_spec_tiled_equals_untiled(spec):
    """The longest prefix, a middle one and the shortest, on an uneven grid, and the chosen plan."""
    graph = small_graph(spec)
    steps = schedule(graph)
    ends = patch.prefixes(graph, steps)
    assert ends, f"{spec.stem}: no step can run tile by tile"
    tried = 0
    for p in sorted({ends[0], ends[len(ends) // 2], ends[-1]}):
        shape = steps[p - 1].out_shape
        grid = (min(3, shape.h), min(2, shape.w))
        if grid[0] * grid[1] < 2:
            continue
        plan = patch.make(graph, steps, p, grid)
        _check_plan(graph, plan, steps)
        assert_no_overlap(plan_memory(graph, steps, inplace_dw=True, patches=plan))
        tried += 1
    assert tried


# Every padding mode and stride, odd map sizes, pooling with and without padding, a residual
# and a concat inside the prefix.
GEOMETRIES = [
    "conv / s2  3x3x3x8 pad=same\nconv dw / s1 3x3x8 dw pad=same\nconv / s1 1x1x8x8\n",
    "conv / s2  3x3x3x8 pad=same_tf\nconv dw / s2 3x3x8 dw pad=same_tf\nconv / s1 1x1x8x4\n",
    "conv / s1  5x5x3x4 pad=valid\nconv / s3 3x3x4x4 pad=valid\nconv dw / s2 5x5x4 dw pad=same_tf\n",
    "conv / s1  3x3x3x4 pad=1\nmax pool / s2 3x3 pad=same\navg pool / s1 3x3 pad=same\n",
    "conv / s2  3x3x3x4\navg pool / s2 2x2\nconv / s1 3x3x4x4 pad=same_tf\n",
    "conv / s1  3x3x3x8\nresidual {\n  conv 3x3x8x8\n  conv dw / s1 5x5x8 dw\n}\nconv / s2 3x3x8x8\n",
    "conv / s1  1x1x3x8\nconcat {\n  branch {\n    conv 3x3x8x4\n  }\n  branch {\n    conv 1x1x8x4\n  }\n}\nconv dw / s2 3x3x8 dw\n",
]


@pytest.mark.parametrize("body", GEOMETRIES, ids=range(len(GEOMETRIES)))
@pytest.mark.parametrize("grid", [(2, 2), (3, 2), (1, 3), (4, 4)])
def test_padding_modes_and_strides(body, grid):
    graph = parse_text("network t(a = 1)\ninput 23x19x3\nafter conv: bn relu\n" + body)
    steps = schedule(graph)
    for p in patch.prefixes(graph, steps):
        shape = steps[p - 1].out_shape
        g = (min(grid[0], shape.h), min(grid[1], shape.w))
        if g[0] * g[1] >= 2:
            plan = patch.make(graph, steps, p, g)
            _check_plan(graph, plan, steps, seed=p)
            assert_no_overlap(plan_memory(graph, steps, inplace_dw=True, patches=plan))


def test_recomputed_mult_adds_by_hand():
    """Two 3x3 same convs on 8x8x1, two tiles of rows: each tile's first conv computes one halo row
    more (rows 0-4 and 3-7), so 2 rows x 8 columns x 9 mult-adds are recomputed."""
    graph = parse_text("network t(a = 1)\ninput 8x8x1\nconv 3x3x1x1\nconv 3x3x1x1\n")
    steps = schedule(graph)
    plan = patch.make(graph, steps, 2, (2, 1))
    assert plan.prefix_macs == 2 * 8 * 8 * 9
    assert plan.extra_macs == 2 * 8 * 9
    assert [t[0].out for t in plan.tiles] == [patch.Rect(0, 5, 0, 8), patch.Rect(3, 8, 0, 8)]
    assert [t[0].pads for t in plan.tiles] == [(1, 1, 0, 1), (0, 1, 1, 1)]


def test_in_place_depthwise_needs_one_plane():
    """16x16x8 in, 16x16x8 out: whole, in + out; in place, the larger of the two plus one plane."""
    graph = parse_text("network t(a = 1)\ninput 16x16x8\nconv dw 3x3x8 dw\n")
    assert plan_memory(graph).arena_bytes == 2 * 16 * 16 * 8 * 4
    plan = plan_memory(graph, inplace_dw=True)
    assert plan.arena_bytes == 16 * 16 * 8 * 4 + 16 * 16 * 4
    assert plan.buffer_of["dw1"] == plan.buffer_of["input"]
    assert set(plan.scratch_of) == {"dw1"}
    assert plan_memory(graph, elem_bytes=1, inplace_dw=True).arena_bytes == 16 * 16 * 8 + 16 * 16


def test_in_place_depthwise_keeps_an_input_read_later():
    """A residual reads the depthwise's input after it: no in-place."""
    graph = parse_text("network t(a = 1)\ninput 8x8x8\nconv 1x1x8x8\nresidual {\n  conv dw 3x3x8 dw\n}\n")
    plan = plan_memory(graph, inplace_dw=True)
    assert not plan.scratch_of
    assert plan.arena_bytes == plan_memory(graph).arena_bytes


def test_a_channel_multiplier_is_not_in_place():
    graph = parse_text("network t(a = 1)\ninput 8x8x4\nconv dw 3x3x4 dw multiplier=2\n")
    assert not plan_memory(graph, inplace_dw=True).scratch_of


def test_chosen_plan_stays_within_the_budget_and_shrinks_the_arena():
    graph = load_graph("vww_mobilenet_v1.arch")
    steps = schedule(graph)
    floor = plan_memory(graph, steps).arena_bytes
    plan = patch.choose(graph, steps)
    assert plan is not None and plan.extra_macs <= 0.10 * plan.network_macs
    patched = plan_memory(graph, steps, inplace_dw=True, patches=plan)
    assert patched.arena_bytes < floor
    tight = patch.choose(graph, steps, budget=0.01)
    assert tight is None or tight.extra_macs <= 0.01 * tight.network_macs


def _every_candidate(graph, steps, elem_bytes, budget, input_in_arena):
    """The smallest (arena, extra mult-adds) over every prefix and square grid within the budget,
    the first in (prefix, grid) order on a tie: the search `choose` makes, without its bound."""
    best_key, best = (plan_memory(graph, steps, elem_bytes, inplace_dw=True,
                                  input_in_arena=input_in_arena).arena_bytes, 0), None
    total = sum(n.macs for n in graph.nodes)
    for p in patch.prefixes(graph, steps):
        shape = steps[p - 1].out_shape
        for n in range(2, min(patch.MAX_GRID, shape.h, shape.w) + 1):
            plan = patch.make(graph, steps, p, (n, n))
            if plan.extra_macs > budget * total:
                break
            key = (plan_memory(graph, steps, elem_bytes, inplace_dw=True, patches=plan,
                               input_in_arena=input_in_arena).arena_bytes, plan.extra_macs)
            if key < best_key:
                best_key, best = key, plan
    return best


@pytest.mark.parametrize("spec", ["mobilenet_v1.arch", "vww_mobilenet_v1.arch", "mobilenet_v2.arch",
                                  "resnet8_cifar10.arch", "shufflenet_v2.arch"])
def test_the_bounded_search_finds_what_trying_every_candidate_finds(spec):
    """choose() skips the prefixes its arena bound rules out; the plan must be the exhaustive search's."""
    graph = load_graph(spec)
    steps = schedule(graph)
    for elem_bytes, budget, held in ((4, patch.DEFAULT_BUDGET, True), (1, patch.DEFAULT_BUDGET, True),
                                     (4, 0.3, True), (1, patch.DEFAULT_BUDGET, False)):
        want = _every_candidate(graph, steps, elem_bytes, budget, held)
        got = patch.choose(graph, steps, elem_bytes=elem_bytes, budget=budget, input_in_arena=held)
        assert (got is None) == (want is None), (spec, elem_bytes, budget, held)
        if want is not None:
            assert (got.prefix, got.grid, got.extra_macs) == (want.prefix, want.grid, want.extra_macs), \
                (spec, elem_bytes, budget, held)


def test_bad_prefix_and_grid_are_errors():
    graph = load_graph("vww_mobilenet_v1.arch")
    steps = schedule(graph)
    with pytest.raises(ArchError, match="cannot run tile by tile"):
        patch.make(graph, steps, len(steps), (2, 2))  # runs past the fc
    with pytest.raises(ArchError, match="does not fit"):
        patch.make(graph, steps, 4, (50, 50))
    with pytest.raises(ArchError, match="no step"):
        patch.resolve_prefix(graph, steps, "nonesuch")
    with pytest.raises(ArchError, match="ROWSxCOLS"):
        patch.parse_grid("3by3")


# ---------------------------------------------------------------- the command line

def _stats(*args):
    from typer.testing import CliRunner

    from archdsl.cli import app
    from conftest import SPECS

    return CliRunner().invoke(app, ["stats", str(SPECS / "vww_mobilenet_v1.arch"), *args])


def test_stats_reports_the_three_arenas_as_json():
    import json

    res = _stats("--format", "json", "--patch-prefix", "dw2", "--patch-grid", "4x4")
    assert res.exit_code == 0, res.output
    mem = json.loads(res.stdout)["memory"]
    graph = load_graph("vww_mobilenet_v1.arch")
    steps = schedule(graph)
    plan = patch.make(graph, steps, patch.resolve_prefix(graph, steps, "dw2"), (4, 4))
    assert plan.prefix == 4  # dw2's row ends after its fused depthwise + BN + ReLU: conv1, dw1, conv2, dw2
    assert mem["patch"] == {"prefix_steps": 4, "prefix_output": "dw2.relu", "grid": [4, 4],
                            "extra_macs": plan.extra_macs, "extra_fraction": round(plan.extra_fraction, 6)}
    assert mem["floor_bytes"] == 4 * (48 * 48 * 16 + 48 * 48 * 8)  # conv2: 48x48x8 in, 48x48x16 out
    assert mem["arena_plain_bytes"] == json.loads(res.stdout)["totals"]["peak_activation_bytes"]
    assert mem["arena_patched_bytes"] == plan_memory(graph, steps, inplace_dw=True, patches=plan).arena_bytes
    assert mem["arena_patched_bytes"] < mem["floor_bytes"]


def test_stats_plot_memory_writes_a_png(tmp_path):
    out = tmp_path / "mem.png"
    res = _stats("--by", "type", "--plot-memory", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "arena with in-place depthwise and patches" in res.stdout


@pytest.mark.parametrize("args, message", [
    (("--patch-grid", "3by3"), "ROWSxCOLS"),
    (("--patch-grid", "3x3x3"), "ROWSxCOLS"),  # was read as 3x3
    (("--patch-grid", "0x2"), "does not fit"),
    (("--patch-grid", "1"), "use at least two tiles"),
    (("--patch-grid", "100000x100000"), "does not fit"),  # was "none beats running whole"
    (("--patch-prefix", "fc1", "--patch-grid", "2x2"), "cannot run tile by tile"),
    (("--patch-prefix", "nope"), "no step"),
    (("--recompute-budget", "-1"), "fraction"),
])
def test_stats_bad_patch_options_are_diagnostics(args, message):
    res = _stats(*args)
    assert res.exit_code != 0
    assert message in res.output and "Traceback" not in res.output


def test_stats_patch_grid_none_turns_patches_off():
    res = _stats("--patch-grid", "none")
    assert res.exit_code == 0, res.output
    assert "none (turned off" in res.stdout
