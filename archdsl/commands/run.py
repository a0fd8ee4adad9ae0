"""`archdsl run`: compile a spec for a target into a temporary folder, run it on an input, print
(or save) the output. With `--target c --mcu cortex-m3|cortex-m4|cortex-m7` the C code is cross-compiled and
run under qemu-system-arm, and the flash/RAM table and the instruction count are printed too.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ArchError


def read_input(path: Path, graph):
    """The input array of `path` (a plain .npy of at most inputs.INPUT_IMAGES images of `graph`)."""
    import numpy as np

    from ..inputs import input_limit, load_npy

    x = load_npy(path, input_limit(graph))
    if not np.issubdtype(x.dtype, np.number):
        raise ArchError(f"{path} holds {x.dtype} values, not numbers")
    return x.astype(np.float32)


def check_shape(graph, x):
    from ..backends.common import check_batch

    return check_batch(x, graph.input_shape.chw, graph.name)


def show_output(y, limit: int = 20) -> str:
    import numpy as np

    lines = []
    for i, img in enumerate(y.reshape(len(y), -1)):
        if img.size <= limit:
            vals = " ".join(f"{v:.6g}" for v in img)
            lines.append(f"output[{i}]: {vals}")
        else:
            top = np.argsort(-img, kind="stable")[:5]
            lines.append(f"output[{i}]: {img.size} values, min {img.min():.6g}, max {img.max():.6g}, "
                         f"mean {img.mean():.6g}; top-5 " + ", ".join(f"#{k}={img[k]:.4g}" for k in top))
    return "\n".join(lines)


def _int8_c_network(target, graph, weights):
    """The QuantizedNetwork when the C target runs int8 weights, else None."""
    from ..quant.weights_file import is_int8_dict

    if target.NAME != "c" or not is_int8_dict(weights):
        return None
    from ..quant.network import QuantizedNetwork

    return QuantizedNetwork.build(graph, weights)


def register(app: typer.Typer) -> None:
    from ..cli import SET_HELP, load_graph, user_errors

    @app.command("run")
    @user_errors
    def run_cmd(
        spec: Path = typer.Argument(..., help="The .arch spec file."),
        target: str = typer.Option("c", "--target", "-t", metavar="c|numpy|torch|onnx",
                                   help="Which generated code runs the input (default c: built with the host "
                                        "C compiler)."),
        input_: Optional[Path] = typer.Option(None, "--input", "-i", metavar="X.npy",
                                              help="Input: float array, NCHW, (C, H, W) or (N, C, H, W). "
                                                   "Default: one seeded standard-normal image."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="OUT.npy",
                                           help="Write the output (N, C, H, W) float32 here."),
        set_: Optional[List[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help=SET_HELP),
        weights: Optional[Path] = typer.Option(None, "--weights", "-w", metavar="FILE",
                                               help="Weights (.npz, a PyTorch state_dict .pt, or .onnx). "
                                                    "Default: the seeded init of `archdsl compile`."),
        seed: int = typer.Option(0, "--seed", help="Seed of the default weights and of the default input."),
        mcu: Optional[str] = typer.Option(None, "--mcu", metavar="cortex-m3|cortex-m4|cortex-m7",
                                          help="C target only: cross-compile with arm-none-eabi-gcc and run under "
                                               "qemu-system-arm (mps2-an385 / -an386 / -an500); prints flash and RAM "
                                               "and the instructions per inference."),
        profile: bool = typer.Option(False, "--profile",
                                     help="With --mcu: also a per-layer table of executed instructions (counted "
                                          "by a QEMU plugin) and estimated cycles (Cortex-M4/M7 cycle table; not for M3)."),
    ):
        """Compile a spec, run it on an input and print the output.

        Examples:

          archdsl run specs/mobilenet_v1.arch --input x.npy -o y.npy --set alpha=0.25

          archdsl run specs/mobilenet_v1.arch --mcu cortex-m4 --set alpha=0.25 --set rho=96/224

          archdsl run specs/mobilenet_v1.arch --mcu cortex-m4 --profile --set alpha=0.25 --set rho=96/224
        """
        import numpy as np

        from .mcu import mcu_report
        from .targets import get_weights, load_target

        if mcu is not None and target != "c":
            raise ArchError("--mcu applies to the C target only", None, "drop --target or use --target c")
        if profile and mcu is None:
            raise ArchError("--profile needs --mcu", None, "e.g. --mcu cortex-m4 --profile")
        if out is not None and out.suffix != ".npy":
            raise ArchError(f"--out {out}: the output is written as .npy", None, f"e.g. -o {out.with_suffix('.npy')}")
        tgt = load_target(target)
        graph = load_graph(spec, set_)
        w = get_weights(graph, weights, seed)
        if input_ is not None:
            x = check_shape(graph, read_input(input_, graph))
        else:
            x = np.random.default_rng(seed).standard_normal((1, *graph.input_shape.chw)).astype(np.float32)
            typer.echo(f"input: one seeded standard-normal image {graph.input_shape} (give one with --input)")
        net = _int8_c_network(tgt, graph, w)
        if net is not None:  # the int8 C program quantizes float input; its int8 output is dequantized here
            from ..quant.arithmetic import dequantize

            typer.echo(f"int8: the input quantized with {net.input}, the output dequantized from {net.output}")
        with tempfile.TemporaryDirectory(prefix="archdsl-run-") as tmp:
            tgt.compile(graph, w, Path(tmp), graph.name)
            if mcu is None:
                y = tgt.run(Path(tmp), graph.name, x)
            else:
                y = mcu_report(tgt, graph, Path(tmp), x, mcu, profile=profile)
        if net is not None:
            y = dequantize(y, net.output.scale, net.output.zero_point)
        y = np.asarray(y, dtype=np.float32).reshape(len(x), *graph.output_shape.chw)
        typer.echo(show_output(y))
        if out is not None:
            from ..fsutil import write_files_atomically
            import io

            buf = io.BytesIO()
            np.save(buf, y, allow_pickle=False)
            write_files_atomically(out.parent if str(out.parent) else Path("."), {out.name: buf.getvalue()})
            typer.echo(f"wrote {out} {tuple(y.shape)}")
