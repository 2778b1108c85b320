"""The locked install: ``requirements/constraints.txt``, compiled from pyproject.toml with uv.

    python requirements/lock.py compile --torch torch==2.13.0   # what `make lock` runs
    python requirements/lock.py check                          # fails when pyproject.toml and the lock disagree

The lock pins every package that ``pip install -e '.[test]'`` installs, resolved for every platform
and Python version pyproject.toml allows (``uv pip compile --universal``), with the torch version the
bootstrap installs. torch itself and the CUDA packages of its GPU build (``nvidia-*``, ``triton``,
``cuda-*``) are left out: the bootstrap and the Dockerfile pick torch for the device. The lock's
first line records a digest of pyproject.toml's dependency lists, so ``check`` catches a
pyproject.toml edited without ``make lock`` even where its new requirement happens to be satisfied.
Compiling again keeps the existing pins wherever they still fit (uv prefers them), so a new
dependency changes only the lines it needs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "constraints.txt"
EXTRA = "test"
DEVICE_PACKAGES = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
DIGEST_LINE = "# pyproject.toml digest: "


def project_inputs(pyproject: Path) -> dict:
    """What the lock is compiled from: requires-python, the dependencies and the test extra, with the
    project's own extras that it names (``muppet[tracking]``) replaced by their requirements."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    own = canonicalize_name(project["name"])

    def expand(texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            req = Requirement(text)
            out += expand([r for e in sorted(req.extras) for r in extras.get(e, [])]) if canonicalize_name(req.name) == own else [text]
        return out

    return {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        EXTRA: expand(extras.get(EXTRA, [])),
    }


def inputs_digest(pyproject: Path) -> str:
    """sha256 of the inputs, as canonical JSON."""
    return "sha256:" + hashlib.sha256(json.dumps(project_inputs(pyproject), sort_keys=True).encode()).hexdigest()


def _package(line: str) -> str | None:
    """The canonical name of a pin line (``name==version ; marker``), None for a comment or blank."""
    if not line or line[0] in " #":
        return None
    return canonicalize_name(Requirement(line).name)


def compile_lock(torch: str, uv: str) -> int:
    """Resolve with uv (``torch`` as a constraint), drop the device packages, prepend the digest."""
    pyproject, lock = PYPROJECT, LOCK
    cmd = [uv, "pip", "compile", "pyproject.toml", "--extra", EXTRA, "--universal", "--quiet", "--constraints", "-",
           "--output-file", str(lock.relative_to(ROOT)), "--custom-compile-command", "make lock"]
    done = subprocess.run(cmd, input=torch + "\n", text=True, cwd=ROOT)
    if done.returncode:
        return done.returncode
    kept, skipping = [], False
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(DIGEST_LINE):
            continue
        name = _package(line)
        if name is not None:
            skipping = bool(DEVICE_PACKAGES.match(name))
        if not skipping:
            kept.append(line)
    lock.write_text("\n".join([DIGEST_LINE + inputs_digest(pyproject), *kept]) + "\n", encoding="utf-8")
    print(f"{lock.relative_to(ROOT)}: {sum(_package(x) is not None for x in kept)} pins (torch and its CUDA packages left out)")
    return 0


def lock_problems(pyproject: Path = PYPROJECT, lock: Path = LOCK) -> list[str]:
    """Why the lock does not match pyproject.toml, one line each (empty when it does)."""
    if not lock.is_file():
        return [f"{lock} is missing: run `make lock`"]
    lines = lock.read_text(encoding="utf-8").splitlines()
    problems = []
    recorded = lines[0].removeprefix(DIGEST_LINE) if lines and lines[0].startswith(DIGEST_LINE) else None
    if recorded != inputs_digest(pyproject):
        problems.append(f"{lock.name} was compiled from other dependencies than pyproject.toml's "
                        f"(digest {recorded} in the lock, {inputs_digest(pyproject)} now): run `make lock`")
    pins: dict[str, list[Requirement]] = {}
    for line in lines:
        if _package(line) is not None:
            pin = Requirement(line)
            pins.setdefault(canonicalize_name(pin.name), []).append(pin)
    inputs = project_inputs(pyproject)
    for text in inputs["dependencies"] + inputs[EXTRA]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if DEVICE_PACKAGES.match(name):
            continue
        if name not in pins:
            problems.append(f"{text}: not pinned in {lock.name}: run `make lock`")
        for pin in pins.get(name, []):
            version = next(iter(pin.specifier)).version
            if not req.specifier.contains(version, prereleases=True):
                problems.append(f"{text}: {lock.name} pins {pin.name}=={version}, outside the range: run `make lock`")
    problems += [f"{name}: pinned in {lock.name}, but the bootstrap installs it by device" for name in pins if DEVICE_PACKAGES.match(name)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="write the lock from pyproject.toml")
    c.add_argument("--torch", required=True, help="the torch requirement the bootstrap installs, e.g. torch==2.13.0")
    c.add_argument("--uv", default="uv", help="the uv executable")
    k = sub.add_parser("check", help="exit 1 when pyproject.toml and the lock disagree")
    k.add_argument("--pyproject", type=Path, default=PYPROJECT)
    k.add_argument("--lock", type=Path, default=LOCK)
    args = parser.parse_args(argv)
    if args.command == "compile":
        return compile_lock(args.torch, args.uv)
    problems = lock_problems(args.pyproject, args.lock)
    for line in problems:
        print(f"lock: {line}", file=sys.stderr)
    if not problems:
        print(f"{args.lock.name} matches {args.pyproject.name}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
