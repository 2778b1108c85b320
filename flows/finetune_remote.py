"""muppet-finetune: the fan-out's ``deployment`` executor, on Prefect work pools (registered by
``flows/__init__.py``: it needs Prefect deployments, so the library knows it only by its settings).

Each fine-tune (or each chunk of the executor's ``chunk``) becomes a flow run of the deployment
``muppet-finetune/<work pool>``, started with ``run_deployment(..., timeout=0)``; the Prefect workers
of its ``work_pool`` (processes, Docker containers, Kubernetes jobs, on any machine) execute them,
and the fan-out waits for them all. A flow run's jobs are ``FinetuneJob``s, run one after another as
the ``process`` executor's child runs one (``python -m muppet_core.training``): data from the
store, the result published to the store, a failure as a failure record, and where the result lives
written under the store's ``_jobs/`` folder, where the fan-out reads it.

A flow run whose worker dies goes silent: its flow runs send heartbeats every ``HEARTBEAT_S``, and
the automation ``CRASH_AUTOMATION`` marks one silent for ``SILENT_S`` (since its last heartbeat, or
its start when none arrived) Crashed. A run that ends
without results (Crashed, Failed, Cancelled) is submitted again for the jobs it left, at most
``retries`` times, then each job left is a failure record (``retry_or_fail``, the ``process``
executor's path too); they resume from their last checkpoints, which live in the store's scratch area.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from muppet_core.artifacts.stage import StageOutput
from muppet_core.artifacts.store import ArtifactStore
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import DeploymentSettings, FinetuneConfig
from muppet_core.errors import MuppetError, first_line
from muppet_core.stopping import pause
from muppet_core.training.executor import Executor, register_executor
from muppet_core.training.finetune import FinetuneRun
from muppet_core.training.finetune_worker import FinetuneJob, retry_or_fail
from muppet_core.training.pinning import Device

log = logging.getLogger(__name__)
FLOW = "muppet-finetune"
HEARTBEAT_S = 30
"""Seconds between a fine-tune flow run's heartbeats (Prefect's minimum)."""
SILENT_S = 2 * HEARTBEAT_S
"""A running fine-tune flow run without a heartbeat for this long (one missed) is marked Crashed."""
CRASH_AUTOMATION = "muppet: crash silent fine-tune runs"
JOBS = "_jobs/finetune"
"""Where in the store each job's result location is written (removed once read)."""
POLL_S = 2.0
FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


class RemoteRunError(MuppetError):
    """A fine-tune's flow run ended without a result (its worker died, or it failed or was cancelled)."""


@flow(name=FLOW)
def finetune_jobs(jobs: list[FinetuneJob]) -> list[str]:
    """Run fine-tunes on this worker, one after another; returns where each result's location was written."""
    logger = get_run_logger()
    for job in jobs:
        logger.info("fine-tune %s", job.run.name)
        logger.info(job.execute().describe())
    return [job.output for job in jobs]


def check_executor(config: FinetuneConfig, store: ArtifactStore) -> str:
    """Before any work: the store every worker reaches, and the work pool on the server; returns the
    name of the pool's ``muppet-finetune`` deployment, created or updated.

    Raises:
        StoreError: the store is a local path.
        MuppetError: no ``work_pool``, or no such pool on the server.
    """
    store.require_shared("finetune.executor: deployment")
    pool = config.executor.work_pool
    if not pool:
        raise MuppetError("finetune.executor: deployment needs a work_pool (executor: {kind: deployment, work_pool: NAME}): "
                          "the work pool whose workers run the fine-tunes")
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise MuppetError(f"no work pool '{pool}' on the Prefect server: create it with `prefect work-pool create {pool} --type process` "
                              f"and start workers with `prefect worker start --pool {pool}`") from None
    _ensure_crash_automation()
    return _ensure_deployment(pool)


def _ensure_deployment(pool: str) -> str:
    from prefect.deployments.runner import EntrypointType, deploy

    env = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S), "PREFECT_LOGGING_EXTRA_LOGGERS": "muppet_core", "TOKENIZERS_PARALLELISM": "false"}
    deployment = finetune_jobs.to_deployment(
        name=pool, description=f"fine-tunes of muppet pipelines, on the workers of {pool}", tags=["muppet", FLOW],
        entrypoint_type=EntrypointType.MODULE_PATH, job_variables={"env": env},
    )
    deploy(deployment, work_pool_name=pool, build=False, push=False, print_next_steps_message=False, ignore_warnings=True)
    return f"{FLOW}/{pool}"


def _ensure_crash_automation() -> None:
    """Prefect's zombie-run detection, for fine-tune flow runs: silent for ``SILENT_S`` -> Crashed.

    The silence is counted from the run's last heartbeat, or from its start (``Running``, which the
    server itself records) when no heartbeat reached the server: a worker killed before its run's first
    heartbeat event was delivered left that run Running for ever, and its pipeline waiting on it. A
    server holding the automation as an earlier version made it (heartbeats only) gets it replaced."""
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    after = {"prefect.flow-run.heartbeat", "prefect.flow-run.Running"}
    try:
        existing = Automation.read(name=CRASH_AUTOMATION)
    except ValueError:  # none of that name
        existing = None
    if existing is not None:
        if set(getattr(existing.trigger, "after", ())) == after:
            return
        existing.delete()
    ends = {f"prefect.flow-run.{s}" for s in ("heartbeat", "Completed", "Failed", "Cancelled", "Crashed")}
    Automation(
        name=CRASH_AUTOMATION,
        description=f"a {FLOW} flow run without a heartbeat for {SILENT_S} s lost its worker",
        trigger=EventTrigger(
            after=after, expect=ends, for_each={"prefect.resource.id"}, posture=Posture.Proactive,
            threshold=1, within=timedelta(seconds=SILENT_S), match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.role": "tag", "prefect.resource.id": [f"prefect.tag.{FLOW}"]}),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {SILENT_S} s: its worker is gone")],
    ).create()


def finetune_on_workers(
    pipeline: str, runs: list[FinetuneRun], data: list[StageOutput], config: FinetuneConfig, store: ArtifactStore,
    callbacks: list[CallbackSpec] | None = None, log_line: Callable[[str], None] = print, done: Callable[[int, int], None] = lambda d, t: None,
) -> list[StageOutput]:
    """Run ``runs`` (with their benchmarks' ``data``) as flow runs of the work pool's deployment,
    all submitted at once, and wait for them; a run that ends without results is submitted again
    for what it left (the executor's ``retries`` times; ``retry_or_fail``), each with ``callbacks`` (the
    pipeline run's tracker). Returns the outputs in the order of ``runs``; ``done(finished, total)`` is
    called as they come in."""
    deployment = check_executor(config, store)
    started = time.perf_counter()
    settings = config.executor
    device = Device(threads=settings.threads) if settings.threads else None
    jobs = [
        FinetuneJob(pipeline=pipeline, run=run, data=d, config=config, store=store.root, store_options=store.options, device=device,
                    output=f"{store.root}/{JOBS}/{uuid.uuid4().hex}.json", callbacks=callbacks or [])
        for run, d in zip(runs, data)
    ]
    pending = {_submit(deployment, jobs[i:i + settings.chunk]): (jobs[i:i + settings.chunk], 0) for i in range(0, len(jobs), settings.chunk)}
    log_line(f"{len(jobs)} fine-tune(s) in {len(pending)} flow run(s) of {deployment}")
    results: dict[str, StageOutput] = {}
    try:
        _wait(pending, results, jobs, settings.retries, deployment, store, started, log_line, done)
    except BaseException:  # SIGTERM, Ctrl-C or an error: the flow runs it leaves are cancelled, not left to the workers
        cancel_flow_runs(list(pending), log_line)
        raise
    return [results[job.output] for job in jobs]


def _wait(pending: dict, results: dict[str, StageOutput], jobs: list[FinetuneJob], retries: int, deployment: str, store: ArtifactStore,
          started: float, log_line: Callable[[str], None], done: Callable[[int, int], None]) -> None:
    """Poll the ``pending`` flow runs until every job has its result or its failure record in ``results``."""
    while pending:
        pause(POLL_S)
        for flow_run in _final(list(pending)):
            chunk, attempt = pending.pop(flow_run.id)
            for job in chunk:
                if (output := _result(store, job)) is not None:
                    results[job.output] = output
            left = [job for job in chunk if job.output not in results]
            if not left:
                done(len(results), len(jobs))
                continue
            why = RemoteRunError(f"flow run {flow_run.name} ended {flow_run.state.name}: {(flow_run.state.message or '').strip() or 'no message'}")
            failed = retry_or_fail(left, attempt, retries, why, store, started, log_line)
            if failed is None:
                pending[_submit(deployment, left)] = (left, attempt + 1)
                continue
            results.update((job.output, output) for job, output in zip(left, failed))
            done(len(results), len(jobs))


def cancel_flow_runs(ids: list, log_line: Callable[[str], None]) -> None:
    """Cancel the fine-tune flow runs ``ids`` on the server: a worker stops one it runs, and none picks up one still scheduled."""
    if not ids:
        return
    with get_client(sync_client=True) as client:
        for flow_run_id in ids:
            try:
                client.set_flow_run_state(flow_run_id, State(type=StateType.CANCELLING, message="the pipeline run that started it stopped"))
            except Exception as exc:  # one refused cancel (the run just ended) does not keep the others running
                log.warning("could not cancel fine-tune flow run %s: %s", flow_run_id, first_line(exc))
    log_line(f"cancelled {len(ids)} fine-tune flow run(s) on the work pool")


def _submit(deployment: str, jobs: list[FinetuneJob]):
    name = f"finetune-{jobs[0].run.name}" + (f"+{len(jobs) - 1}" if len(jobs) > 1 else "")
    flow_run = run_deployment(deployment, parameters={"jobs": [j.model_dump(mode="json") for j in jobs]}, timeout=0, flow_run_name=name, tags=[FLOW])
    return flow_run.id


def _final(ids: list) -> list:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
    return [r for r in runs if r.state is not None and r.state.type in FINAL]


def _result(store: ArtifactStore, job: FinetuneJob) -> StageOutput | None:
    """The output a job's worker wrote (and removes the file), or None."""
    name = job.output.removeprefix(f"{store.root}/")
    try:
        output = StageOutput(**json.loads(store.read_text(name)))
    except FileNotFoundError:
        return None
    store.remove(name)
    return output


class DeploymentExecutor(Executor):
    """``deployment``: the whole fan-out as flow runs of the work pool's ``muppet-finetune`` deployment."""

    settings = DeploymentSettings
    whole_fan_out = True

    def check(self, config: FinetuneConfig, store: ArtifactStore) -> None:
        """A store every worker reaches and the work pool on the server (``check_executor``)."""
        check_executor(config, store)

    def run_all(self, pipeline, runs, data, config, store, callbacks, log_line, done) -> list[StageOutput]:
        """``finetune_on_workers``."""
        return finetune_on_workers(pipeline, runs, data, config, store, callbacks, log_line, done)


DEPLOYMENT = register_executor(DeploymentExecutor())
"""The ``deployment`` executor, registered wherever the fan-out (``flows.finetune``) is imported."""
