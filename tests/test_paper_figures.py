"""MobileNetV1 specs against the figures printed in the paper and the seeds.

Sources: Howard et al. 2017 (seeds/000: Tables 1, 2, 3, 8; Tables 6-7 of the paper for the α and ρ
sweeps) and seeds/004 (the comparison table, in Keras' trainable-parameter convention).
"""
from __future__ import annotations

import pytest

from archdsl.analysis.costs import by_type, totals
from conftest import load_graph


def test_mobilenet_v1_totals_match_the_paper():
    t = totals(load_graph("mobilenet_v1.arch"))
    assert t["macs"] == 568_740_352  # Table 8: 569 million mult-adds
    assert t["params"] == 4_209_088  # Table 8: 4.2 million parameters


def test_mobilenet_v1_keras_total_params():
    # Keras' MobileNet(alpha=1.0) summary prints Total params 4,253,864 and trainable 4,231,976.
    t = totals(load_graph("mobilenet_v1.arch"))
    assert t["params_keras"] == 4_253_864
    assert t["params_with_bn"] == 4_231_976


# Table 2 (Resource per layer type), as printed.
TABLE2 = {
    "Conv 1x1": (94.86, 74.59),
    "Conv DW 3x3": (3.06, 1.06),
    "Conv 3x3": (1.19, 0.02),
    "Fully Connected": (0.18, 24.33),
}


def test_table2_shares():
    rows = {r["type"]: r for r in by_type(load_graph("mobilenet_v1.arch"))}
    assert set(rows) == set(TABLE2)
    for kind, (macs_pct, params_pct) in TABLE2.items():
        assert round(rows[kind]["params_pct"], 2) == params_pct, kind
        if kind == "Conv 3x3":
            # The paper prints 1.19%; the first layer's 10,838,016 mult-adds are 1.91% of 568.7M.
            # Its digits are swapped: with 1.19 the column sums to 99.29%, with 1.91 to 100.01%
            # (docs/paper-figures.md).
            assert round(rows[kind]["macs_pct"], 2) == 1.91
        else:
            assert round(rows[kind]["macs_pct"], 2) == macs_pct, kind


@pytest.mark.parametrize("spec, sets, macs_m, params_m", [
    ("mobilenet_v1_table3_conv.arch", {}, 462, 2.36),
    ("mobilenet_v1_table3_separable.arch", {}, 52.3, 0.27),
    ("mobilenet_v1_table3_separable.arch", {"alpha": 0.75}, 29.6, 0.15),
    ("mobilenet_v1_table3_separable.arch", {"alpha": 0.75, "rho": 0.714}, 15.1, 0.15),
])
def test_table3_rows(spec, sets, macs_m, params_m):
    t = totals(load_graph(spec, **sets))
    digits = 0 if macs_m >= 100 else 1
    assert round(t["macs"] / 1e6, digits) == macs_m
    assert round(t["params"] / 1e6, 2) == params_m


@pytest.mark.parametrize("alpha, macs_m, params_m", [(1.0, 569, 4.2), (0.75, 325, 2.6), (0.5, 149, 1.3),
                                                      (0.25, 41, 0.5)])
def test_table6_width_multiplier(alpha, macs_m, params_m):
    t = totals(load_graph("mobilenet_v1.arch", alpha=alpha))
    assert round(t["macs"] / 1e6) == macs_m
    assert round(t["params"] / 1e6, 1) == params_m


@pytest.mark.parametrize("size, macs_m", [(224, 569), (192, 418), (160, 290), (128, 186)])
def test_table7_resolution_multiplier(size, macs_m):
    g = load_graph("mobilenet_v1.arch", rho=size / 224)
    assert (g.input_shape.h, g.input_shape.w) == (size, size)
    t = totals(g)
    # The paper rounds 568.7M up to 569 but prints 290.7M as 290 (truncated); accept either.
    assert macs_m in (round(t["macs"] / 1e6), int(t["macs"] / 1e6))
    assert t["params"] == 4_209_088  # Figure 5: parameters do not depend on the resolution


@pytest.mark.parametrize("alpha, rho, printed", [(0.75, 0.85, 2.59), (0.25, 0.57, 0.47)])
def test_seed_004_comparison_in_keras_trainable_convention(alpha, rho, printed):
    # seeds/004 prints Keras' trainable counts (weights + biases + BN γ/β) for the reduced
    # models; for α = 1 it prints 4.20M, the paper's "4.2" (trainable gives 4.23M).
    t = totals(load_graph("mobilenet_v1.arch", alpha=alpha, rho=rho))
    assert round(t["params_with_bn"] / 1e6, 2) == printed


def test_peak_activation_memory_is_the_largest_live_pair():
    # For a chain with fused BN/ReLU the largest live set is the first pointwise conv's
    # input and output: 112x112x32 and 112x112x64 floats.
    t = totals(load_graph("mobilenet_v1.arch"))
    assert t["peak_activation_bytes"] == 112 * 112 * (32 + 64) * 4
