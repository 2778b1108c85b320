"""A fine-tune's checkpoints shared through the artifact store, so that a run whose machine died
resumes on another one (the ``deployment`` executor's jobs ask for it).

The run's local checkpoint folder stays where the loop writes it (``store.scratch``); the
``CheckpointMirror`` callback copies each new ``latest`` checkpoint to ``_checkpoints/<stage>/<key>/``
in the store: the files under ``step<N>/``, then ``LATEST.json`` naming the step and every file's
sha256, written last, so a reader never takes a checkpoint whose upload was cut short. ``pull``
copies the newest one back (checked against those digests) before a run starts, unless the machine
holds one as new; ``drop`` removes the store's copy once the run's result is published.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from muppet_core.artifacts.store import ArtifactStore, file_sha256
from muppet_core.errors import CorruptArtifactError
from muppet_core.training.callbacks import Callback, CallbackSpec
from muppet_core.training.checkpoint import LATEST

log = logging.getLogger(__name__)
POINTER = "LATEST.json"


def folder(stage: str, key: str) -> str:
    """Where in the store a run's shared checkpoints live."""
    return f"_checkpoints/{stage}/{key}"


def _local_step(latest: Path) -> int | None:
    try:
        return int(json.loads((latest / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None


def push(store: ArtifactStore, stage: str, key: str, latest: Path) -> int:
    """Copy the local checkpoint ``latest`` to the store (files first, ``LATEST.json`` last) and
    remove the store's older one; returns its step."""
    step = _local_step(latest)
    files = {p.name: file_sha256(str(p)) for p in sorted(latest.iterdir()) if p.is_file()}
    for name in files:
        store.write_bytes(f"{folder(stage, key)}/step{step}/{name}", (latest / name).read_bytes())
    try:
        before = json.loads(store.read_text(f"{folder(stage, key)}/{POINTER}"))["step"]
    except FileNotFoundError:
        before = None
    store.write_text(f"{folder(stage, key)}/{POINTER}", json.dumps({"step": step, "files": files}))
    if before is not None and before != step:
        store.remove(f"{folder(stage, key)}/step{before}", recursive=True)
    return step


def pull(store: ArtifactStore, stage: str, key: str) -> int | None:
    """Put the store's newest checkpoint of the run in its local checkpoint folder, unless the
    local one is as new; returns the step of the store's copy (None: the store holds none).

    Raises:
        CorruptArtifactError: a file differs from the digest ``LATEST.json`` gives it.
    """
    try:
        pointer = json.loads(store.read_text(f"{folder(stage, key)}/{POINTER}"))
    except FileNotFoundError:
        return None
    step, local = pointer["step"], store.scratch(stage, key) / LATEST
    if (_local_step(local) or 0) >= step:
        return step
    staging = local.parent / f".pull-step{step}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, sha in pointer["files"].items():
        data = store.read_bytes(f"{folder(stage, key)}/step{step}/{name}")
        if hashlib.sha256(data).hexdigest() != sha:
            shutil.rmtree(staging, ignore_errors=True)
            raise CorruptArtifactError(f"{store.root}/{folder(stage, key)}/step{step}", name, f"differs from its sha256 in {POINTER}")
        (staging / name).write_bytes(data)
    shutil.rmtree(local, ignore_errors=True)
    staging.rename(local)
    log.info("took the checkpoint at step %d from %s/%s", step, store.root, folder(stage, key))
    return step


def drop(store: ArtifactStore, stage: str, key: str) -> None:
    """Remove the run's shared checkpoints from the store."""
    store.remove(folder(stage, key), recursive=True)


class CheckpointMirror(Callback):
    """Copies each new local checkpoint of the run to the store (see the module's docstring). The
    loop writes a checkpoint after the update's callbacks, so one is copied at the next update's end.

    Args:
        store: the store's root.
        cache_dir: the store's local cache folder (None: this machine's).
        stage, key: the run's stage and content key.
    """

    def __init__(self, store: str, stage: str, key: str, cache_dir: str | None = None):
        self.store, self.stage, self.key = ArtifactStore(store, cache_dir), stage, key
        self.sent: int | None = None

    def on_step_end(self, step: int, logs: dict) -> None:
        latest = self.store.scratch(self.stage, self.key) / LATEST
        current = _local_step(latest)
        if current is not None and current != self.sent:
            self.sent = push(self.store, self.stage, self.key, latest)


def mirror_spec(store: ArtifactStore, stage: str, key: str) -> CallbackSpec:
    """The spec that installs a ``CheckpointMirror`` (on rank 0) where the loop runs."""
    options = {"store": store.root, "stage": stage, "key": key, "cache_dir": str(store.cache_dir)}
    return CallbackSpec(target=f"{__name__}:CheckpointMirror", options=options, rank_zero=True)
