"""The MLPerf Tiny specs against the models' own parameter counts.

References, none taken from archdsl: the numbers printed in shared/models/README.md (Keras' "Total
params", the float .tflite's constant count), and the same counts read from the model files.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from archdsl.cli import app

from conftest import SPECS

runner = CliRunner()

# (spec, --set, Keras total params, float .tflite constants (BN folded), output classes)
CASES = {
    "vww": ("vww_mobilenet_v1.arch", [], 221_794, 210_850, 2),
    "resnet8": ("resnet8_cifar10.arch", [], 78_666, 77_706, 10),
    "resnet8_large": ("resnet8_cifar10.arch", ["--set", "f=40"], None, 480_330, 10),
}


def stats_json(spec, sets) -> dict:
    r = runner.invoke(app, ["stats", str(SPECS / spec), "--format", "json", *sets])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_counts_match_the_models(case):
    spec, sets, keras_total, folded, classes = CASES[case]
    s = stats_json(spec, sets)
    if keras_total is not None:
        assert s["totals"]["params_keras"] == keras_total, f"{spec}: Keras counts {keras_total:,}"
    assert s["totals"]["params_folded"] == folded, f"{spec}: the float .tflite holds {folded:,} constants"
    assert s["layers"][-1]["out"] == [1, 1, classes]


def test_the_specs_check_cleanly():
    for spec in ("vww_mobilenet_v1.arch", "resnet8_cifar10.arch"):
        r = runner.invoke(app, ["check", str(SPECS / spec)])
        assert r.exit_code == 0, r.output


@pytest.mark.parametrize("case, h5", [("vww", "vww/vww_96.h5"), ("resnet8", "ic/pretrainedResnet.h5")])
def test_keras_total_is_the_h5s_array_sizes(models_dir, case, h5):
    """The README's totals are the sizes of the .h5's weight arrays (optimizer state excluded)."""
    import h5py

    total = 0
    with h5py.File(models_dir / h5, "r") as f:
        def add(_, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += int(np.prod(obj.shape))
        f["model_weights"].visititems(add)
    assert total == CASES[case][2]


@pytest.mark.parametrize("case, tfl", [("vww", "vww/vww_96_float.tflite"), ("resnet8", "ic/pretrainedResnet.tflite"),
                                       ("resnet8_large", "ic/pretrainedResnet_large_float.tflite")])
def test_folded_count_is_the_tflites_float_constants(models_dir, case, tfl):
    import tflite

    m = tflite.Model.GetRootAsModel((models_dir / tfl).read_bytes(), 0)
    sg = m.Subgraphs(0)
    total = 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        data = m.Buffers(t.Buffer()).DataAsNumpy()
        if t.Type() == tflite.TensorType.FLOAT32 and not isinstance(data, int) and data.size:
            total += data.size // 4
    assert total == CASES[case][3]
