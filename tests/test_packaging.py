"""The wheel carries the grammar and the bundled specs, and works outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr[-300:]}")
    return next(out.glob("archdsl-*.whl"))


def test_wheel_contains_grammar_and_specs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "archdsl/frontend/grammar.lark" in names
    specs = {Path(n).name for n in names if n.startswith("archdsl/specs/") and n.endswith(".arch")}
    assert specs == {p.name for p in (ROOT / "specs").glob("*.arch")}


def test_installed_wheel_works_from_any_directory(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import archdsl, pathlib; a = archdsl.load('resnet50'); "
            "assert 'site' in str(archdsl.spec_path('resnet50')); print(a.parameter_count())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "25557032"


def test_wheel_ships_license_and_examples(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"archdsl/examples/small_resnet.arch", "archdsl/examples/mnist_cnn.arch"} <= names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text and "Requires-Dist: numpy" in text and "Project-URL" in text
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import archdsl; print(archdsl.load('examples/small_resnet.arch').parameter_count())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site)),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
