"""A wheel built from the project, installed into a fresh virtual environment, works from any directory."""
from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, SPECS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"wheel build failed:\n{proc.stderr[-2000:]}")
    return next(out.glob("archdsl-*.whl"))


def test_wheel_ships_grammar_and_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "archdsl/grammars/archdsl.lark" in names
    assert any(n.startswith("archdsl/codegen_templates/") for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_runs_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # System site-packages provide the dependencies (no network needed); the wheel itself is
    # installed into the venv, which comes first on sys.path.
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(SPECS / "mobilenet_v1.arch", work / "net.arch")
    where = subprocess.run([str(py), "-c", "import archdsl, archdsl.resources as r; "
                            "print(archdsl.__file__); print(r.grammar_path())"],
                           cwd=work, capture_output=True, text=True, check=True).stdout.split()
    assert all(str(env_dir) in p for p in where), where
    out = subprocess.run([str(env_dir / "bin" / "archdsl"), "stats", "net.arch", "--format", "json"],
                         cwd=work, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"macs": 568740352' in out.stdout
