"""The Makefile finds any supported Python (3.11-3.14) and says what to do when there is none."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make")


def make(tmp_path: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    """The venv target in an empty copy of the project, with only `path` to find Python on."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    env = {**os.environ, "PATH": path}
    env.pop("PYTHON", None)
    env.pop("MAKEFLAGS", None)
    return subprocess.run(
        [str(MAKE), "--no-print-directory", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_any_supported_python_on_path_is_picked(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.13").symlink_to(sys.executable)
    project = tmp_path / "project"
    project.mkdir()

    planned = make(project, "-n", ".venv/bin/python", path=str(bin_dir))

    assert planned.returncode == 0, planned.stderr
    assert f"{bin_dir}/python3.13 -m venv .venv" in planned.stdout


def test_no_supported_python_says_how_to_choose_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    missing = make(empty, ".venv/bin/python", path=str(tmp_path / "nowhere"))
    wrong = make(empty, ".venv/bin/python", "PYTHON=/no/such/python3.9", path="/usr/bin:/bin")

    assert missing.returncode != 0
    assert "no Python 3.11-3.14 on PATH" in missing.stderr and "PYTHON=" in missing.stderr
    assert wrong.returncode != 0
    assert "/no/such/python3.9 is not Python 3.11-3.14: set PYTHON=" in wrong.stderr
