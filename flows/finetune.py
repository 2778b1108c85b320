"""fine-tune: the fan-out, one task per variant x benchmark x seed x learning rate (and experiment run)
that the store does not hold yet; those it holds are cache hits, taking no slot and no executor.

A fine-tune holds a slot of this machine's Prefect global concurrency limit while it works
(``flows.slots``: every pipeline run of the machine shares it, each sets it to its
``finetune.concurrency``; a wait says who holds the slots, and a stop ends it at once). Each run
executes on the executor ``finetune.executor`` names (``muppet_core.training.executor``): a thread
of this process, or a process of its own. An executor that takes the whole fan-out at once,
such as ``deployment`` (flow runs on a work pool, ``flows.finetune_remote``), is handed every run instead.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.runtime import flow_run

from flows.finetune_remote import DEPLOYMENT  # noqa: F401  (registers the deployment executor)
from flows.progress import Progress
from flows.slots import ensure_limit, finetune_slot
from muppet_core import stages
from muppet_core.artifacts.stage import StageOutput
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import open_store
from muppet_core.stopping import stop_on_interrupt
from muppet_core.training.executor import executor_for, run_finetune
from muppet_core.training.finetune import FinetuneRun, plan_runs, stored_finetune


@task(name="finetune-benchmark", task_run_name="finetune-{run.name}")
def finetune_one(
    pipeline_name: str, pipeline: PipelineConfig, run: FinetuneRun, data: StageOutput, callbacks: list[CallbackSpec] | None = None
) -> StageOutput:
    logger = get_run_logger()
    with finetune_slot(pipeline_name, str(flow_run.name), run.name, logger.info):
        output = run_finetune(pipeline_name, run, data, pipeline.finetune, open_store(pipeline), logger.info, callbacks or [])
    if output.stage == stages.FINETUNE_FAILED:
        logger.error("fine-tune failed; the leaderboard shows its cell as missing and a re-run retries it: %s", output.uri)
    else:
        logger.info(output.describe())
    return output


@flow(name="fine-tune")
def finetune_all(
    pipeline_name: str, pipeline: PipelineConfig, variants: list[Variant], data: dict[str, dict[str, StageOutput]],
    callbacks: list[CallbackSpec] | None = None,
) -> list[StageOutput]:
    """Take from the store every planned fine-tune it holds, and submit the others at once; the
    concurrency limit bounds how many work together. A progress artifact counts the finished ones
    ("3 of 8 fine-tunes").

    ``data`` holds each backbone's prepared datasets, by backbone (as configured) then benchmark;
    ``callbacks``: given to every fine-tune (the pipeline run's tracker; None: none).
    """
    runs = plan_runs(pipeline.finetune, variants)
    store = open_store(pipeline)
    logger = get_run_logger()
    outputs: list[StageOutput | None] = [stored_finetune(run, data[run.variant.backbone][run.benchmark], pipeline.finetune, store) for run in runs]
    for output in filter(None, outputs):
        logger.info(output.describe())
    todo = [i for i, output in enumerate(outputs) if output is None]
    progress = Progress(lambda done, total: f"{done} of {total} fine-tunes")
    if not todo:
        return outputs
    logger.info("%d of %d fine-tune(s) to compute (the others are in the store)", len(todo), len(runs))
    executor = executor_for(pipeline.finetune)
    progress(len(runs) - len(todo), len(runs))
    if executor.whole_fan_out:
        benchmarks = [data[runs[i].variant.backbone][runs[i].benchmark] for i in todo]
        done = lambda finished, total: progress(len(runs) - total + finished, len(runs))  # noqa: E731
        computed = executor.run_all(pipeline_name, [runs[i] for i in todo], benchmarks, pipeline.finetune, store, callbacks, logger.info, done)
        for i, output in zip(todo, computed):
            outputs[i] = output
        return outputs
    ensure_limit(pipeline.finetune.concurrency, logger.info)
    several = len(data) > 1
    with executor.fan_out():  # what the executor keeps for the fine-tunes (warm processes) ends with them
        futures = {
            i: finetune_one.with_options(task_run_name=f"finetune-{runs[i].variant.label}/{runs[i].name}" if several else f"finetune-{runs[i].name}")
            .submit(pipeline_name, pipeline, runs[i], data[runs[i].variant.backbone][runs[i].benchmark], callbacks)
            for i in todo
        }
        with stop_on_interrupt():  # SIGTERM, Ctrl-C: the fine-tunes waiting or working in other threads stop too
            for done, _ in enumerate(as_completed(list(futures.values())), len(runs) - len(todo) + 1):
                progress(done, len(runs))
    for i, future in futures.items():
        outputs[i] = future.result()
    return outputs
