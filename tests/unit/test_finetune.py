"""Fine-tune runs: the fan-out plan, multiple-choice evaluation, determinism, early stopping, head reuse."""

import json

from muppet_core.config import FinetuneConfig
from muppet_core.data.prepare import prepare_task
from muppet_core.models.backbone import Variant
from muppet_core.tasks.catalog import get_task
from muppet_core.training.finetune import FinetuneRun, finetune, finetune_key, plan_runs


def test_plan_covers_the_grid_and_the_experiments():
    config = FinetuneConfig(benchmarks=["rte", "cb", "copa"], seeds=[0, 1], learning_rates=[1e-5, 3e-5], train_fractions=[0.1, 0.5])
    base, tuned = Variant("base", "k0", "/b"), Variant("prefinetuned", "k1", "/p/encoder", ("rte",))
    subset = Variant("prefinetuned-2tasks", "k2", "/q/encoder", ("rte", "snli"), "task_count")
    runs = plan_runs(config, [base, tuned, subset])
    main = [r for r in runs if r.experiment is None]
    assert len(main) == 2 * 3 * 2 * 2
    assert len([r for r in runs if r.experiment == "sample_efficiency"]) == 2 * 2 * 3 * 2
    assert {r.learning_rate for r in runs if r.experiment} == {1e-5}
    assert len([r for r in runs if r.experiment == "task_count"]) == 3 * 2
    assert len({r.name for r in runs} | {r.variant.name + r.name for r in runs}) >= len(runs)


def test_the_head_reuse_control_repeats_the_pre_finetuned_grid_from_fresh_heads():
    from muppet_core.artifacts.stage import StageOutput
    from muppet_core.evaluation.results import CONTROL_VARIANT

    config = FinetuneConfig(benchmarks=["rte", "cb"], seeds=[0, 1, 2], head_reuse_control=True)
    base, tuned = Variant("base", "k0", "/b"), Variant("prefinetuned", "k1", "/p/encoder", ("rte",))
    runs = plan_runs(config, [base, tuned])
    control = [r for r in runs if r.variant.name == CONTROL_VARIANT]
    assert len(runs) == 3 * 2 * 3 and len(control) == 2 * 3
    assert all(r.variant.key == "k1" and not r.reuses_head(config) for r in control)
    assert all(r.reuses_head(config) for r in runs if r.variant.name == "prefinetuned")
    data = StageOutput("data", "rte", "dk", "store/data/dk", False)
    keys = {finetune_key(r, data, config) for r in runs}
    assert len(keys) == len(runs)
    assert len(plan_runs(config.model_copy(update={"head_reuse_control": False}), [base, tuned])) == 2 * 2 * 3


def test_the_key_ignores_execution_settings_but_not_what_changes_the_result():
    from muppet_core.artifacts.stage import StageOutput

    config = FinetuneConfig(benchmarks=["rte"])
    data = StageOutput("data", "rte", "dk", "store/data/dk", False)
    run = FinetuneRun(Variant("base", "k", "/b"), "rte", 0, 3e-5)
    key = finetune_key(run, data, config)
    for execution in ({"checkpoint_every": 5}, {"checkpoint_every": None}, {"concurrency": 4}, {"executor": "process"}, {"executor": "thread"},
                      {"executor": {"kind": "process", "retries": 3}}):
        assert finetune_key(run, data, FinetuneConfig(benchmarks=["rte"], **execution)) == key
    assert finetune_key(run, data, config.model_copy(update={"epochs": 2.0})) != key


def test_multiple_choice_benchmark_is_fine_tuned_deterministically(tiny_backbone, mirror, tmp_path):
    prepare_task(get_task("arc_easy"), mirror, 0.1, 0, tmp_path)
    config = FinetuneConfig(benchmarks=["arc_easy"], batch_size=8, max_length=48, max_train_examples=24, max_eval_examples=30)
    run = FinetuneRun(Variant("base", "k", tiny_backbone), "arc_easy", 0, 3e-5)
    first = finetune(run, tmp_path, config, "unit")
    again = finetune(run, tmp_path, config, "unit")
    assert first.main_metric == "accuracy" and 0.0 <= first.score <= 1.0
    assert (first.train_examples, first.eval_examples, first.examples_seen) == (24, 30, 24)
    assert first.metrics == again.metrics
    half = finetune(FinetuneRun(run.variant, "arc_easy", 0, 3e-5, fraction=0.5, experiment="sample_efficiency"), tmp_path, config, "unit")
    assert half.train_examples == 12 and half.experiment == "sample_efficiency"


def test_early_stopping_keeps_the_best_validation_weights(tiny_backbone, mirror, tmp_path, caplog):
    prepare_task(get_task("rte"), mirror, 0.1, 0, tmp_path)
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=48, max_train_examples=64, max_eval_examples=40,
                            epochs=4, eval_every=2, patience=2, learning_rates=[1e-3])
    record = finetune(FinetuneRun(Variant("base", "k", tiny_backbone), "rte", 0, 1e-3), tmp_path, config, "unit")
    assert record.examples_seen <= 4 * 64
    assert 0.0 <= record.score <= 1.0


def test_pre_finetuned_head_is_reused_when_the_benchmark_was_pre_finetuned(tiny_backbone, mirror, tmp_path, caplog):
    import logging

    import torch

    from muppet_core.models.backbone import load_encoder
    from muppet_core.families.build import build_multitask_model

    torch.manual_seed(5)
    encoder, tokenizer = load_encoder(tiny_backbone)
    model = build_multitask_model(encoder, [get_task("rte")])
    model.save(tmp_path / "pft", tokenizer)
    prepare_task(get_task("rte"), mirror, 0.1, 0, tmp_path / "data")
    config = FinetuneConfig(benchmarks=["rte"], batch_size=8, max_length=48, max_train_examples=16, max_eval_examples=16)
    variant = Variant("prefinetuned", "k", str(tmp_path / "pft" / "encoder"), ("rte",))
    with caplog.at_level(logging.INFO, logger="muppet_core"):
        finetune(FinetuneRun(variant, "rte", 0, 3e-5), tmp_path / "data", config, "unit")
    assert "starts from the pre-finetuned head rte" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="muppet_core"):
        finetune(FinetuneRun(variant, "rte", 0, 3e-5), tmp_path / "data", config.model_copy(update={"head_reuse": False}), "unit")
    assert "pre-finetuned head" not in caplog.text
    assert json.loads((tmp_path / "pft" / "heads.json").read_text())["rte"]["outputs"] == 2
