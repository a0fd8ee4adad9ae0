"""A wheel built from the project, installed into a fresh virtual environment, works from any directory."""
from __future__ import annotations

import os
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


def outer_package_dirs() -> list[str]:
    """The folders the running interpreter imports installed packages from: a venv's, a conda
    env's or the system's site-packages (the base's too for a venv that sees them)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def test_installed_wheel_runs_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # The dependencies come from the interpreter running the tests, whatever it is (a fresh venv,
    # a conda env, the system Python): its package folders are listed in a .pth file of the new
    # venv, after the venv's own. (system_site_packages=True would give the *base* interpreter's
    # packages, not the active venv's.) The folders' own .pth files are not run, so the
    # project's editable install stays out; no network and no pip inside the venv are needed.
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site_dir = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    (Path(site_dir) / "outer_packages.pth").write_text("\n".join(outer_package_dirs()) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(SPECS / "mobilenet_v1.arch", work / "net.arch")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed wheel, nothing else
    where = subprocess.run([str(py), "-c", "import archdsl, archdsl.resources as r; "
                            "print(archdsl.__file__); print(r.grammar_path())"],
                           cwd=work, capture_output=True, text=True, check=True, env=env).stdout.split()
    assert all(str(env_dir) in p for p in where), where
    out = subprocess.run([str(env_dir / "bin" / "archdsl"), "stats", "net.arch", "--format", "json"],
                         cwd=work, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert '"macs": 568740352' in out.stdout
