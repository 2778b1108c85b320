"""The locked install: requirements/constraints.txt agrees with pyproject.toml, and the check that
says so fails on each kind of drift (a changed dependency list, a pin outside a range, a missing
pin, a device package pinned). Offline: nothing is resolved here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "requirements" / "lock.py"


def check(pyproject: Path = REPO / "pyproject.toml", lock: Path = REPO / "requirements" / "constraints.txt") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "check", "--pyproject", str(pyproject), "--lock", str(lock)],
                          capture_output=True, text=True, timeout=60)


def copies(tmp_path: Path) -> tuple[Path, Path]:
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "constraints.txt"
    shutil.copy(REPO / "pyproject.toml", pyproject)
    shutil.copy(REPO / "requirements" / "constraints.txt", lock)
    return pyproject, lock


def test_lock_matches_pyproject():
    done = check()
    assert done.returncode == 0, done.stderr
    lock = (REPO / "requirements" / "constraints.txt").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", lock, flags=re.M))
    # every runtime and test requirement is pinned, torch and its CUDA packages are not
    for name in ("transformers", "prefect", "deepspeed", "huggingface-hub", "pytest", "moto", "uv"):
        assert name in pins, name
    assert not [n for n in pins if n == "torch" or n == "triton" or n.startswith(("nvidia-", "cuda-"))]


def test_check_fails_on_a_dependency_added_without_make_lock(tmp_path):
    pyproject, lock = copies(tmp_path)
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"pyyaml>=6.0",', '"pyyaml>=6.0",\n  "tabulate>=0.9",'))
    done = check(pyproject, lock)
    assert done.returncode == 1
    assert "compiled from other dependencies than pyproject.toml's" in done.stderr
    assert "tabulate>=0.9: not pinned in constraints.txt: run `make lock`" in done.stderr


def test_check_fails_on_a_pin_outside_the_range(tmp_path):
    pyproject, lock = copies(tmp_path)
    pinned = re.search(r"^transformers==(\S+)", lock.read_text(), flags=re.M).group(1)
    pyproject.write_text(pyproject.read_text().replace('"transformers>=4.45"', f'"transformers>{pinned}"'))
    digest_line = lock.read_text().splitlines()[0]
    done = check(pyproject, lock)
    assert done.returncode == 1
    assert f"transformers>{pinned}: constraints.txt pins transformers=={pinned}, outside the range" in done.stderr
    assert digest_line.split()[-1] in done.stderr  # the recorded digest, and the one pyproject.toml has now


def test_check_fails_on_a_pinned_device_package(tmp_path):
    pyproject, lock = copies(tmp_path)
    lock.write_text(lock.read_text() + "torch==2.13.0\n")
    done = check(pyproject, lock)
    assert done.returncode == 1
    assert done.stderr.strip() == "lock: torch: pinned in constraints.txt, but the bootstrap installs it by device"
