"""The layers (pyproject.toml's ``[tool.importlinter]``, docs/architecture.md): no module imports from a
layer above its own. import-linter checks the contract over every import, those inside functions
and under ``TYPE_CHECKING`` included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` over the packages under ``root``, with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


def test_no_module_imports_from_a_layer_above_its_own():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("muppet_core", "flows"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    heads = tmp_path / "muppet_core" / "models" / "heads.py"
    # Even inside a function, models may not reach up to the leaderboard.
    heads.write_text(heads.read_text() + "\n\ndef _upward():\n    from muppet_core.leaderboard.schema import Leaderboard\n\n    return Leaderboard\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout[-4000:]
    assert "muppet_core.models is not allowed to import muppet_core.leaderboard" in done.stdout
    assert "muppet_core.models.heads -> muppet_core.leaderboard.schema" in done.stdout


def test_every_module_has_a_layer():
    """A module outside every layer would escape the contract."""
    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    layered = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    top = {f"muppet_core.{p.stem}" for p in (REPO / "muppet_core").iterdir() if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert top - layered == set()
    assert layered - top - {"flows"} == set()
