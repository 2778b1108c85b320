"""The job a training process is given: one JSON file, ``python -m muppet_core.training JOB.json``.

A job's ``kind`` says what the process runs: ``prefinetune``, one rank of a pre-finetuning run
(``muppet_core.training.worker``), or ``finetune``, one fine-tune (``muppet_core.training.finetune_worker``).
``muppet_core.training.__main__`` reads the file and runs the job of its kind; a flow run of the
``deployment`` executor runs fine-tune jobs in its own process (``Job.execute``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from muppet_core.artifacts.backend import read_file
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec


def read_text(path: str | Path) -> str:
    """The text of a job file: a local path, or a URI in the store."""
    return read_file(str(path)).decode("utf-8")


class Job(BaseModel):
    """What every job holds, validated when a process reads its job file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    """What the process runs (each kind's model fixes it)."""
    store: str
    """The artifact store's root, where the job's data is read and its result written."""
    store_options: dict[str, Any] = Field(default_factory=dict)
    """The options its backend is opened with (the pipeline's ``store_options``)."""
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    """Callbacks installed besides those the job's stage installs itself (see ``CallbackSpec``)."""

    @classmethod
    def read(cls, path: str | Path) -> Any:
        """The job of ``path`` (a local path, or a URI in the store), validated as this kind's job."""
        return cls.model_validate_json(read_text(path))

    def open_store(self, cache_dir: str | None = None) -> ArtifactStore:
        """The job's artifact store, opened with its options (a store inside it, opened after, takes them too)."""
        return ArtifactStore(self.store, cache_dir, options=self.store_options)

    def execute(self) -> Any:
        """Run the job in this process."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it runs")
