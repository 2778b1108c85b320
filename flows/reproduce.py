"""muppet-reproduce: prepare-data -> pre-finetune -> fine-tune fan-out -> leaderboard, for every
backbone the pipeline evaluates (its own and its watch list's).

The parameters are what the Prefect UI's Run form shows, so each has a type and a description.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.data import prepare_data
from flows.finetune import finetune_all
from flows.leaderboard import build_leaderboard
from flows.prefinetune import prefinetune as prefinetune_backbone
from muppet_core.callbacks import CallbackSpec
from muppet_core.config import PipelineConfig
from muppet_core.models.backbone import Variant
from muppet_core.pipelines import DEFAULT_FILE, check_store, load_pipeline, open_store, resolve_backbones
from muppet_core.planning.render import artifact_key, markdown
from muppet_core.planning.run import check_budget, make_plan
from muppet_core.stopping import clear_stop
from muppet_core.tracking import open_tracker, without_mlflow
from muppet_core.training.executor import executor_for


@flow(name="muppet-reproduce")
def reproduce(
    pipeline: str = "demo",
    backbones: list[str] | None = None,
    store: str | None = None,
    prefinetune: bool | None = None,
    finetune: bool = True,
    config: str = DEFAULT_FILE,
    max_gpu_hours: float | None = None,
) -> str | None:
    """Run a named pipeline end to end; returns the location of its leaderboard CSV.

    Args:
        pipeline: Name of the pipeline in pipelines.yaml.
        backbones: Evaluate these backbones instead of the pipeline's own and its watch list
            (package:NAME, a directory, an s3:// URI or a Hugging Face hub id).
        store: Artifact store root (a directory or an s3:// URI) instead of the pipeline's.
        prefinetune: Pre-finetune each backbone; empty: as pipelines.yaml says.
        finetune: Fine-tune on the benchmarks and publish the leaderboard; off: stop after pre-finetuning.
        config: Path of pipelines.yaml (relative to the working directory of the run).
        max_gpu_hours: Stop the run before any work when its plan (published first, as the artifact plan-PIPELINE)
            needs more GPU-hours than this; empty: no limit.
    """
    clear_stop()  # a run of this process asked to stop before does not stop this one
    cfg = load_pipeline(pipeline, config)
    overrides: dict = {"store": store} if store else {}
    if prefinetune is not None:
        overrides["prefinetune"] = cfg.prefinetune.model_copy(update={"enabled": prefinetune})
    cfg = cfg.model_copy(update=overrides)
    check_store(cfg)  # a refused, unreachable or (for several machines) local store stops the run before any work
    if finetune:  # an executor not registered here, or one that lacks what it needs (a shared store, a work pool), likewise
        executor_for(cfg.finetune).check(cfg.finetune, open_store(cfg))
    plan = make_plan(pipeline, cfg, open_store(cfg), config)  # this machine's kind, the pipeline's devices
    create_markdown_artifact(markdown(plan), key=artifact_key(pipeline), description=f"Plan of {pipeline}: what this run will cost")
    check_budget(plan, max_gpu_hours)  # over the limit: one line, before any work
    bases = resolve_backbones(cfg, pipeline, open_store(cfg).cache_dir, backbones)  # every backbone resolved and checked before any work
    specs = [base.backbone for base in bases]
    get_run_logger().info("pipeline %s: %d backbone(s): %s", pipeline, len(specs), ", ".join(specs))
    tracker = open_tracker(cfg.tracking, pipeline, str(flow_run.id))
    if tracker is None:
        with without_mlflow():
            return _stages(pipeline, cfg, bases, specs, finetune, [])
    try:
        csv_uri = _stages(pipeline, cfg, bases, specs, finetune, [tracker.spec()])
    except BaseException:
        tracker.close(failed=True)
        raise
    tracker.close()
    return csv_uri


def _stages(
    pipeline: str, cfg: PipelineConfig, bases: list[Variant], specs: list[str], finetune: bool, callbacks: list[CallbackSpec]
) -> str | None:
    variants, data = [], {}
    for base in bases:
        data[base.backbone] = prepare_data(cfg, base)
        variants.append(base)
        if cfg.prefinetune.enabled:
            variants += prefinetune_backbone(cfg, base, data[base.backbone], callbacks)
    if not finetune:
        return None
    fan_out = finetune_all.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cfg.finetune.concurrency))
    results = fan_out(pipeline, cfg, variants, data, callbacks)
    owners = {v.key: v.backbone for v in variants if v.backbone}  # whose each result is: two folders of one name stay two rows
    return build_leaderboard(pipeline, cfg, specs, results, callbacks, owners)
