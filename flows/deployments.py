"""Prefect deployments of muppet-reproduce: one per pipeline of pipelines.yaml.

``muppet serve`` serves them from this machine (the serving process runs each triggered or
scheduled run); ``muppet deploy --work-pool NAME`` registers them on a work pool, whose workers
(processes, Docker containers, Kubernetes jobs) import the flow from the installed package.
"""

from __future__ import annotations

from pathlib import Path

from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from flows.reproduce import reproduce
from muppet_core.config import PipelineConfig
from muppet_core.errors import ConfigError
from muppet_core.pipelines import DEFAULT_FILE, load_validated


def deployment_name(pipeline: str) -> str:
    """What the UI and `prefect deployment run` call a pipeline's deployment: ``muppet-reproduce/<pipeline>``."""
    return f"{reproduce.name}/{pipeline}"


def _deployment(name: str, pipeline: PipelineConfig, config: str, module_entrypoint: bool) -> RunnerDeployment:
    schedules = [Cron(pipeline.schedule, timezone=pipeline.timezone)] if pipeline.schedule else None
    return reproduce.to_deployment(
        name=name,
        description=pipeline.description or f"pipeline {name} of {config}",
        parameters={"pipeline": name, "config": config},
        schedules=schedules,
        tags=["muppet", f"pipeline:{name}"],
        entrypoint_type=EntrypointType.MODULE_PATH if module_entrypoint else EntrypointType.FILE_PATH,
    )


def build_deployments(config: str = DEFAULT_FILE, names: list[str] | None = None, module_entrypoint: bool = False) -> list[RunnerDeployment]:
    """One deployment per pipeline (or per pipeline of ``names``), each with the pipeline's schedule.

    The deployment's default parameters name the pipeline and the config file's absolute path, so a
    run reads pipelines.yaml where it executes (a worker, whatever its working directory, at that
    path): the watch list and settings are those of that moment.

    Raises:
        ConfigError: the file is invalid or a name is not one of its pipelines.
    """
    pipelines = load_validated(config).pipelines
    unknown = sorted(set(names or []) - set(pipelines))
    if unknown:
        raise ConfigError([f"no pipeline named {', '.join(map(repr, unknown))}; known: {', '.join(sorted(pipelines))}"])
    where = str(Path(config).resolve())
    return [_deployment(n, pipelines[n], where, module_entrypoint) for n in (names or sorted(pipelines))]


def serve(deployments: list[RunnerDeployment], limit: int | None = None) -> None:
    """Register the deployments and run their flow runs from this process until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments, limit=limit, print_starting_message=True)


def deploy_to_pool(deployments: list[RunnerDeployment], work_pool: str, image: str | None = None) -> list[str]:
    """Register the deployments on a work pool; returns their ids. ``image`` is the worker image
    (docker/Dockerfile) for Docker and Kubernetes pools; nothing is built or pushed here."""
    from prefect.deployments.runner import deploy

    ids = deploy(*deployments, work_pool_name=work_pool, image=image, build=False, push=False, print_next_steps_message=False)
    return [str(i) for i in ids]
