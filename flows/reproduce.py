"""muppet-reproduce: prepare-data -> pre-finetune -> fine-tune fan-out -> leaderboard."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.data import prepare_data
from flows.finetune import finetune_all
from flows.leaderboard import build_leaderboard
from flows.prefinetune import prefinetune
from muppet_core.models.backbone import base_variant
from muppet_core.pipelines import DEFAULT_FILE, load_pipeline, open_store


@flow(name="muppet-reproduce")
def reproduce(pipeline: str = "demo", config: str = DEFAULT_FILE) -> str:
    """Run a named pipeline end to end; returns the location of its leaderboard CSV.

    Args:
        pipeline: name of the pipeline in the config file.
        config: path of pipelines.yaml.
    """
    cfg = load_pipeline(pipeline, config)
    variants = [base_variant(cfg.backbone, open_store(cfg).cache_dir)]
    data = prepare_data(cfg, variants[0])
    if cfg.prefinetune.enabled:
        variants += prefinetune(cfg, variants[0], data)
    fan_out = finetune_all.with_options(task_runner=ThreadPoolTaskRunner(max_workers=cfg.finetune.concurrency))
    results = fan_out(pipeline, cfg, variants, data)
    return build_leaderboard(pipeline, cfg, results)
