"""The one module that knows where archdsl's data files live.

In a source checkout the grammar and templates sit at the top of the repository
(``grammars/``, ``codegen_templates/``); in an installed wheel they are shipped
inside the package (``archdsl/grammars``, ``archdsl/codegen_templates``).
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"archdsl data folder {name!r} is missing from the installation")


def grammar_path() -> Path:
    return _resource_dir("grammars") / "archdsl.lark"


def templates_dir() -> Path:
    return _resource_dir("codegen_templates")
