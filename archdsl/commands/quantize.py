"""`archdsl quantize`: post-training int8 quantization of float weights (archdsl/quant/ptq.py)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

MAX_CALIBRATION_BYTES = 1 << 30  # a calibration file is untrusted input: refuse anything larger


def register(app: typer.Typer) -> None:
    from ..cli import SET_HELP, load_graph, user_errors

    @app.command("quantize")
    @user_errors
    def quantize_cmd(
        spec: Path = typer.Argument(..., help="The .arch spec."),
        weights: Path = typer.Option(..., "--weights", "-w", metavar="FLOAT.npz",
                                     help="Float weights (.npz, .pt or .onnx, as `compile --weights` takes)."),
        calibration: Path = typer.Option(..., "--calibration", "-c", metavar="SAMPLES.npy",
                                         help="Calibration inputs: a float .npy batch (N, C, H, W), preprocessed "
                                              "as the float network takes them."),
        out: Path = typer.Option(..., "--out", "-o", metavar="FILE.npz", help="The int8 weight file to write."),
        set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
        quantizer: str = typer.Option("mlir", "--quantizer", metavar="mlir|legacy",
                                      help="Whose weight rules to follow: the TFLite converter's MLIR quantizer "
                                           "(its default since TF 2.4) or its legacy one (tflite/tools/optimize)."),
    ):
        """Quantize float weights to int8 in TFLite's scheme (per-channel symmetric weights, int32
        biases, activation ranges from the calibration batch), as the TFLite converter does.

        The int8 weight file it writes (docs/int8.md) goes to `compile --weights` like float weights.

        Example:

          archdsl quantize specs/resnet8_cifar10.arch --weights resnet8.npz --calibration samples.npy -o resnet8_int8.npz
        """
        from ..errors import ArchError
        from ..quant.ptq import quantize
        from ..quant.weights_file import save_int8
        from .targets import get_weights

        if out.suffix.lower() != ".npz":
            raise ArchError(f"--out {out}: int8 weights are written as .npz", None, "e.g. -o weights_int8.npz")
        graph = load_graph(spec, set_)
        float_weights = get_weights(graph, weights, 0, int8=False)
        samples = load_calibration(calibration, graph)
        q, report = quantize(graph, float_weights, samples, quantizer=quantizer)
        path = save_int8(q, out)
        n_w = sum(int(v.size) for k, v in q.items() if k.endswith(".weight"))
        widened = (f"; {report['widened']} channels widened by the bias-overflow rule" if report["widened"] else "")
        typer.echo(f"wrote {path} (int8: {n_w:,} weights; {report['calibrated']} activation ranges from "
                   f"{samples.shape[0]} calibration samples{widened})")


def load_calibration(path: Path, graph):
    """The calibration batch: an .npy (no pickle), float, NCHW with the spec's input shape."""
    import numpy as np

    from ..errors import ArchError

    from ..inputs import load_npy

    try:
        x = load_npy(path, MAX_CALIBRATION_BYTES)
    except ArchError as err:
        err.diagnostics[0].message = f"--calibration {path}: {err.diagnostics[0].message}"
        raise
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
        raise ArchError(f"--calibration {path}: expected a numeric .npy array")
    want = graph.input_shape.chw
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != want or x.shape[0] == 0:
        raise ArchError(f"--calibration {path}: shape {tuple(x.shape)}; {graph.name} takes (N, "
                        f"{', '.join(map(str, want))}) float NCHW inputs")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ArchError(f"--calibration {path}: the samples hold NaN or infinite values")
    return x
