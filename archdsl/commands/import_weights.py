"""`archdsl import`: trained weights from a .tflite, Keras .h5 or .onnx model into an archdsl .npz."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    from ..cli import SET_HELP, load_graph, user_errors

    @app.command("import")
    @user_errors
    def import_cmd(
        spec: Path = typer.Argument(..., help="The .arch spec the model implements."),
        model: Path = typer.Argument(..., help="The trained model: .tflite (float, full-int8 or dynamic-range "
                                                   "quantized), .h5 (Keras full model) or .onnx."),
        out: Path = typer.Option(..., "--out", "-o", metavar="FILE.npz",
                                 help="The weight file to write (keys are the spec's IR parameter names; "
                                      "an int8 weight file for a full-int8 model)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the mapping table."),
    ):
        """Map a trained model's tensors onto a spec's parameters by graph structure and save them.

        The model's layers are paired with the spec's rows in execution order, by kind (conv,
        depthwise conv, fully connected, batchnorm, add, activations, pools) and weight shape; layouts
        are converted (TFLite OHWI / 1HWC, Keras HWIO / HWCM / (in, out)). A mismatch stops with an
        error on the spec row concerned. Then: archdsl compile SPEC --target c --weights FILE.npz

        A full-int8 .tflite (int8 input and activations, per-channel int8 weights, int32 biases)
        gives an int8 weight file that keeps the model's quantization exactly (docs/int8.md). A
        dynamic-range model (int8 weights, float activations) gives float weights, dequantized.

        Examples:

          archdsl import specs/vww_mobilenet_v1.arch vww_96_float.tflite -o vww.npz

          archdsl import specs/resnet8_cifar10.arch pretrainedResnet.h5 -o resnet8.npz

          archdsl import specs/vww_mobilenet_v1.arch vww_96_int8.tflite -o vww_int8.npz
        """
        from ..errors import ArchError
        from ..importers import is_int8_model, match, read_model, render_table
        from ..weights import save_npz

        if out.suffix.lower() != ".npz":
            raise ArchError(f"--out {out}: the weights are written as .npz", None, "e.g. -o weights.npz")
        graph = load_graph(spec, set_)
        try:
            text = spec.read_text(encoding="utf-8")
        except OSError:  # pragma: no cover - load_graph has just read it
            text = None
        int8 = None
        try:
            model_graph = read_model(model)
            result = match(graph, model_graph)
            if is_int8_model(model_graph):
                from ..importers.int8 import import_int8

                int8, _ = import_int8(graph, model_graph, result)
        except ArchError as err:
            if any(d.loc is not None for d in err.diagnostics):
                raise err.with_source(str(spec), text) from None
            raise err.with_source(str(model), None) from None
        if not quiet:
            if int8 is not None:  # BN is folded into the int8 weights: no identity rows
                result.rows = [r for r in result.rows if r.ir_key in int8]
            typer.echo(render_table(result), nl=False)
        if int8 is not None:
            from ..quant.weights_file import save_int8

            path = save_int8(int8, out)
            n_w = sum(int(v.size) for k, v in int8.items() if k.endswith(".weight"))
            n_t = sum(1 for k in int8 if k.endswith(".zero_point"))
            typer.echo(f"wrote {path} (int8: {n_w:,} int8 weights, {n_t} activation tensors' (scale, zero point); "
                       f"the quantization of the {result.model_format} model {model.name} kept exactly)")
            return
        path = save_npz(result.weights, out)
        count = sum(int(v.size) for v in result.weights.values())
        how = ("BN folded in the model: the spec's BN layers set to the identity" if result.bn_folded
               else "BN as in the model")
        deq = getattr(model_graph, "dequantized_weights", 0)
        note = (f"; {deq} int8 weight tensors dequantized to float (a dynamic-range quantized model: "
                "the imported network is float)") if deq else ""
        typer.echo(f"wrote {path} ({len(result.weights)} tensors, {count:,} values; "
                   f"from the {result.model_format} model {model.name}; {how}{note})")
