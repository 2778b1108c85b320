"""fine-tune: the fan-out, one cached task per variant x benchmark x seed x learning rate (and experiment run).

Runs hold a slot of the Prefect global concurrency limit ``muppet-finetune`` while they work, so
every flow sharing a server (and its GPUs) stays within it. The limit is created with
``finetune.concurrency`` slots when missing; operators change it in the Prefect UI. Each run
executes on the executor ``finetune.executor`` names (``muppet_core.training.executor``): a thread
of this process, or a process of its own. An executor that takes the whole fan-out at once, such as
``deployment`` (flow runs on a work pool, ``flows.finetune_remote``), is handed every run instead.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.futures import as_completed

from flows.finetune_remote import DEPLOYMENT  # noqa: F401  (registers the deployment executor)
from flows.progress import Progress
from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.training.executor import executor_for, run_finetune
from muppet_core.training.finetune import FinetuneRun, plan_runs

CONCURRENCY_LIMIT = "muppet-finetune"


@task(name="finetune-benchmark", task_run_name="finetune-{run.name}")
def finetune_one(
    pipeline_name: str, pipeline: PipelineConfig, run: FinetuneRun, data: StageOutput, callbacks: list[CallbackSpec] | None = None
) -> StageOutput:
    with concurrency(CONCURRENCY_LIMIT, occupy=1, strict=True):
        output = run_finetune(pipeline_name, run, data, pipeline.finetune, open_store(pipeline), get_run_logger().info, callbacks or [])
    if output.stage == stages.FINETUNE_FAILED:
        get_run_logger().error("fine-tune failed; the leaderboard shows its cell as missing and a re-run retries it: %s", output.uri)
    else:
        get_run_logger().info(output.describe())
    return output


def ensure_limit(slots: int) -> None:
    """Create the global concurrency limit when the server has none of that name."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(CONCURRENCY_LIMIT)
        except ObjectNotFound:
            client.upsert_global_concurrency_limit_by_name(CONCURRENCY_LIMIT, slots)


@flow(name="fine-tune")
def finetune_all(
    pipeline_name: str, pipeline: PipelineConfig, variants: list[Variant], data: dict[str, dict[str, StageOutput]],
    callbacks: list[CallbackSpec] | None = None,
) -> list[StageOutput]:
    """Submit every planned fine-tune at once; the concurrency limit bounds how many run together.
    A progress artifact counts the finished ones ("3 of 8 fine-tunes").

    ``data`` holds each backbone's prepared datasets, by backbone (as configured) then benchmark;
    ``callbacks``: given to every fine-tune (the pipeline run's tracker; None: none).
    """
    runs = plan_runs(pipeline.finetune, variants)
    progress = Progress(lambda done, total: f"{done} of {total} fine-tunes")
    executor = executor_for(pipeline.finetune)
    if executor.whole_fan_out:
        progress(0, len(runs))
        benchmarks = [data[run.variant.backbone][run.benchmark] for run in runs]
        return executor.run_all(pipeline_name, runs, benchmarks, pipeline.finetune, open_store(pipeline), callbacks, get_run_logger().info, progress)
    ensure_limit(pipeline.finetune.concurrency)
    several = len(data) > 1
    futures = [
        finetune_one.with_options(task_run_name=f"finetune-{run.variant.label}/{run.name}" if several else f"finetune-{run.name}")
        .submit(pipeline_name, pipeline, run, data[run.variant.backbone][run.benchmark], callbacks)
        for run in runs
    ]
    progress(0, len(futures))
    for done, _ in enumerate(as_completed(futures), 1):
        progress(done, len(futures))
    return [f.result() for f in futures]
