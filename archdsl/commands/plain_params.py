"""Command-line values of the plain types without pydantic.

typer (from 0.2x) coerces every parameter through a pydantic TypeAdapter, and importing pydantic
costs a run of `archdsl stats` about a fifth of its time. archdsl's parameters are all str, int,
float, bool and Path, alone or repeated: those are converted here, to the same values and with the
same messages as typer's adapters give; any other parameter (a range, a choice, a file, a custom
parser) still goes to typer's own coercion. With a typer that has no
runtime coercion layer, nothing is changed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

# what the adapters say of a value they cannot read (typer shows it after "Invalid value for ...")
_MESSAGES = {int: "Input should be a valid integer, unable to parse string as an integer",
             float: "Input should be a valid number, unable to parse string as a number",
             bool: "Input should be a valid boolean, unable to interpret input"}
_PLAIN = (str, Path, int, float, bool)
_BOOL_WORDS = {**dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
               **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False)}


def _element_type(descriptor) -> Any:
    """The plain type of a parameter (of each value, when repeated); None when typer must coerce it."""
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return None
    if descriptor.is_ranged or descriptor.is_choice or descriptor.is_file or descriptor.is_tuple:
        return None
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation) or (None,)
    return annotation if annotation in _PLAIN else None


def _convert(kind, value: Any) -> Any:
    if isinstance(value, kind) and kind is not float:
        return value
    if kind is Path:
        return Path(value)
    if kind is str:
        return str(value)
    if kind is bool:
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        return _BOOL_WORDS[str(value).strip().lower()]  # KeyError: not a boolean
    if isinstance(value, bool):
        raise ValueError
    return kind(value)


_RUNTIME_CLASS: list = []  # the RuntimeParam subclass, made once typer's base class is known


def plain_runtime_param(descriptor):
    """typer's RuntimeParam for a plain parameter, converting without pydantic; None otherwise."""
    if _element_type(descriptor) is None:
        return None
    if not _RUNTIME_CLASS:
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam

        class PlainRuntimeParam(RuntimeParam):
            def _coerce_value(self, value: Any, param, ctx) -> Any:
                repeated = get_origin(self.annotation) is list
                kind = get_args(self.annotation)[0] if repeated else self.annotation
                try:
                    if not repeated:
                        return _convert(kind, value)
                    return [_convert(kind, v) for v in (value if isinstance(value, (list, tuple)) else [value])]
                except (KeyError, TypeError, ValueError):
                    raise BadParameter(_MESSAGES.get(kind, f"Input should be a valid {kind.__name__}"),
                                       ctx=ctx, param=param) from None

        _RUNTIME_CLASS.append(PlainRuntimeParam)
    return _RUNTIME_CLASS[0](parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)


def install() -> None:
    """Route typer's plain parameters through plain_runtime_param (once; a no-op on a typer without
    the runtime coercion layer)."""
    try:
        from typer import _coercion, core
    except ImportError:
        return  # a typer without the adapter layer coerces with click's types, without pydantic
    param_class = getattr(core, "_TyperParameter", None)
    original = getattr(param_class, "get_runtime_param", None)
    if getattr(_coercion, "RuntimeParam", None) is None or original is None or getattr(original, "plain", False):
        return

    def get_runtime_param(self):
        if self._runtime_param is None:
            self._runtime_param = plain_runtime_param(self.type_descriptor)
        return original(self)

    get_runtime_param.plain = True
    param_class.get_runtime_param = get_runtime_param
