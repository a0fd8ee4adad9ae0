"""The arena plan behind `stats`' peak activation memory and the C runtime's arena."""
from __future__ import annotations

import pytest

from archdsl.analysis.costs import totals
from archdsl.analysis.memory import plan_memory
from archdsl.analysis.schedule import schedule
from conftest import all_specs, assert_no_overlap, load_graph, parse_text


@pytest.mark.parametrize("spec", all_specs(), ids=lambda p: p.stem)
def test_no_two_live_buffers_overlap(spec):
    assert_no_overlap(plan_memory(load_graph(spec)))


@pytest.mark.parametrize("spec", all_specs(), ids=lambda p: p.stem)
def test_arena_reaches_the_largest_live_set(spec):
    plan = plan_memory(load_graph(spec))
    assert plan.arena_bytes == plan.peak_live_bytes
    assert totals(load_graph(spec))["peak_activation_bytes"] == plan.arena_bytes


@pytest.mark.parametrize("spec", ["mobilenet_v1.arch", "vww_mobilenet_v1.arch", "vgg16.arch",
                                  "mobilenet_v1_cifar10.arch"])
def test_chains_need_only_their_largest_input_output_pair(spec):
    """For a sequential net with fused BN/activations, the lower bound is the largest
    input + output pair of any fused step (computed here from the shapes alone)."""
    graph = load_graph(spec)
    steps = schedule(graph)
    assert all(len(s.inputs) == 1 for s in steps)
    pair = max(4 * (graph.shape_of(s.inputs[0]).numel + s.out_shape.numel) for s in steps
               if not (s.main.op.alias_input or s.main.op.elementwise))
    assert plan_memory(graph).arena_bytes == pair


def test_in_place_and_views_share_buffers():
    g = parse_text("network t(a = 1)\ninput 8x8x4\nconv 3x3x4x4\nrelu\nflatten\n")
    plan = plan_memory(g)
    assert plan.buffer_of["relu1"] == plan.buffer_of["conv1"]  # relu runs in place
    assert plan.buffer_of["flatten1"] == plan.buffer_of["relu1"]  # flatten is a view


def test_a_residual_skip_stays_alive_across_its_body():
    g = parse_text("network t(a = 1)\ninput 8x8x4\nconv 1x1x4x4\nresidual {\n  conv 3x3x4x4\n  conv 3x3x4x4\n}\n")
    plan = plan_memory(g)
    skip = plan.buffers[plan.buffer_of["conv1"]]
    body2 = plan.buffers[plan.buffer_of["residual1.conv2"]]
    assert skip.last >= body2.first  # still needed by the add
    assert plan.arena_bytes == 3 * 8 * 8 * 4 * 4  # skip + body's two tensors at the second conv
