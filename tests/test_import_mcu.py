"""The trained VWW model on a Cortex-M4: weights imported from vww_96_float.tflite, the C target
cross-compiled and run under QEMU (mps2-an386) with the C target's own helpers (build_mcu / run_mcu,
as tests/test_c_mcu.py uses them), against LiteRT and the README's outputs.

Tolerance as in test_import_models: logits (from the probabilities: log p minus its mean, which is the
logits minus their mean) within 1e-5 · max(1, max |logit|), probabilities within 1e-5.
Runs whenever the Arm toolchain and QEMU are installed (.ci/run installs them).
"""
from __future__ import annotations

import numpy as np
import pytest

from archdsl.backends import c_target
from archdsl.importers import import_weights

from conftest import load_graph
from test_import_models import LOGIT_RTOL, PROB_ATOL, README_ATOL, README_OUTPUTS, litert_run, model_inputs

pytestmark = pytest.mark.skipif(c_target.mcu_unavailable() is not None,
                                reason=str(c_target.mcu_unavailable()))


def centered(v: np.ndarray) -> np.ndarray:
    return v - v.mean(axis=-1, keepdims=True)


def test_vww_from_tflite_on_cortex_m4(models_dir, tmp_path):
    tflite = models_dir / "vww" / "vww_96_float.tflite"
    graph = load_graph("vww_mobilenet_v1.arch")
    weights = import_weights(graph, tflite).weights
    names, x = model_inputs("vww")
    names, x = names[:3], x[:3]  # zeros, pattern, one random image: QEMU is slow
    ref_probs, ref_logits = litert_run(tflite, x)

    c_target.compile(graph, weights, tmp_path, "vww")
    build = c_target.build_mcu(tmp_path, "vww", "cortex-m4")
    run = c_target.run_mcu(build, x.transpose(0, 3, 1, 2), graph.output_shape.numel)
    probs = run.output.reshape(len(names), -1)

    assert np.abs(probs - ref_probs).max() <= PROB_ATOL, (probs, ref_probs)
    logits = centered(np.log(probs.astype(np.float64)))
    scale = max(1.0, float(np.abs(ref_logits).max()))
    d = np.abs(logits - centered(ref_logits.astype(np.float64))).max()
    assert d <= LOGIT_RTOL * scale, f"centred logits differ by {d:.3g} on the Cortex-M4"
    for name in ("zeros", "pattern"):
        np.testing.assert_allclose(probs[names.index(name)], README_OUTPUTS[("vww", name)], atol=README_ATOL)
    assert len(run.ticks) == len(names) and all(t > 0 for t in run.ticks)
