"""Shared test helpers: where specs and the shared models live, and a graph loader."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MODELS = ROOT.parent / "shared" / "models"  # MLPerf Tiny models, present in CI; never copied here


def all_specs() -> list[Path]:
    return sorted(SPECS.glob("*.arch"))


def load_graph(spec: str | Path, **sets):
    from archdsl.elaborate import elaborate
    from archdsl.syntax import parse

    path = Path(spec)
    if not path.is_absolute() and not path.exists():
        path = SPECS / path
    return elaborate(parse(path.read_text(encoding="utf-8"), str(path)), sets)


def parse_text(text: str, **sets):
    from archdsl.elaborate import elaborate
    from archdsl.syntax import parse

    return elaborate(parse(text, "test.arch"), sets)


@pytest.fixture
def models_dir() -> Path:
    if not MODELS.is_dir():
        pytest.skip(f"the shared MLPerf Tiny models are not at {MODELS}")
    return MODELS
