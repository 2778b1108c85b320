"""Loading a named pipeline, validated against the schema and the task catalog."""

from __future__ import annotations

import os

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import PipelineConfig, PipelinesFile, get_pipeline, load_pipelines
from muppet_core.tasks.catalog import check_pipeline_tasks

DEFAULT_FILE = "pipelines.yaml"


def load_validated(path: str | os.PathLike[str] = DEFAULT_FILE) -> PipelinesFile:
    """Every pipeline in the file, schema- and catalog-checked."""
    pipelines = load_pipelines(path)
    check_pipeline_tasks(pipelines, os.path.basename(path))
    return pipelines


def load_pipeline(name: str, path: str | os.PathLike[str] = DEFAULT_FILE) -> PipelineConfig:
    """One pipeline by name.

    Raises:
        ConfigError: the file is invalid or has no such pipeline.
    """
    return get_pipeline(load_validated(path), name)


def open_store(pipeline: PipelineConfig) -> ArtifactStore:
    """The pipeline's artifact store."""
    return ArtifactStore(pipeline.store)
