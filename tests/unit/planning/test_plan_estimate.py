"""The plan of real pipelines: rows from the store and the mirror, tokens and FLOPs by their formulas, fine-tune counts,
memory per GPU and what to change when it does not fit, the device rate a stored bench result sets."""

from __future__ import annotations

import json

import pytest

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.config import DataConfig
from muppet_core.data.stage import data_stage
from muppet_core.planning.estimate import plan_pipeline
from muppet_core.planning.flops import training_flops
from muppet_core.planning.hardware import BENCH_RESULTS_ENV, device, results_dir
from muppet_core.planning.render import markdown
from muppet_core.pipelines import load_pipeline
from tests.conftest import REPO


@pytest.fixture
def smoke(tiny_backbone, mirror):
    cfg = load_pipeline("smoke", REPO / "pipelines.yaml")
    return cfg.model_copy(update={"backbone": tiny_backbone, "data": DataConfig(mirror=mirror)})


def test_the_plan_of_the_smoke_pipeline_reads_the_store_and_the_mirror(smoke, mirror, tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    data_stage("rte", smoke.data, store)  # the store now holds rte's stats; trec and rotten_tomatoes are only in the mirror
    cpu = device("cpu", "fp32", tmp_path, mfu=0.5)
    plan = plan_pipeline("smoke", smoke, store, cpu, 1)

    rows = {r.task: r for r in plan.datasets}
    assert rows["rte"].source.startswith("store") and rows["rte"].rows["validation"] == 277
    assert rows["trec"].source.startswith("mirror") and rows["trec"].rows == {"train": 5452, "test": 500}
    assert plan.held["datasets"] == ["rte"]

    pre, shape = plan.prefinetune, plan.shape
    assert pre["examples"] == 4 * 2 * 4  # steps x tasks_per_step x micro_batch_size
    work = pre["work"]
    assert work.tokens == pytest.approx(pre["examples"] * pre["mean_tokens_per_example"])
    # No length stats for the pre-finetuning tasks (they are not in the store): each example counts max_length (64) tokens.
    assert pre["mean_tokens_per_example"] == 64
    assert work.flops == pytest.approx(pre["examples"] * training_flops(shape.layer_params, shape.layers, shape.hidden, 64, 64**2))
    assert work.wall_s == pytest.approx(work.flops / cpu.flops_per_second + cpu.fixed_s["prefinetune"])
    # The data stage normalizes what the store does not hold: trec's and rotten_tomatoes' raw rows.
    assert plan.data.wall_s == pytest.approx((5452 + 500 + 10662) / cpu.fixed_s["data_rows_per_s"])
    assert plan.wall_s == pytest.approx(cpu.fixed_s["run"] + plan.data.wall_s + work.wall_s + plan.finetune["work"].wall_s)

    ft = plan.finetune
    assert ft["count"] == 4 and ft["by_variant"] == {"base": 2, "prefinetuned": 2}  # 2 variants x rte x 2 seeds
    assert ft["benchmarks"]["rte"]["updates"] == 4  # 32 capped examples, 1 epoch, batch 8
    assert plan.gpu_hours == pytest.approx(work.gpu_hours + ft["work"].gpu_hours)
    memory = pre["memory"]["gib"]
    assert memory["total"] == pytest.approx(sum(v for k, v in memory.items() if k != "total"))
    assert plan.store["data"] > 0 and plan.store["exports"] == pre["memory"]["params"] * 4
    text = markdown(plan)
    assert "| rte | train 2,490, validation 277 | - | store (the data stage's stats, read from mirror) |" in text
    assert "## Memory per GPU" in text and "no limit (CPU)" in text


def test_a_pre_finetune_held_by_the_store_is_named(smoke, tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "train_summary.json").write_text("{}")
    store.publish("prefinetune", "k" * 24, folder, {"tasks": smoke.prefinetune.tasks, "steps": smoke.prefinetune.steps})
    plan = plan_pipeline("smoke", smoke, store, device("cpu", "fp32", tmp_path, mfu=0.5), 1)
    assert plan.prefinetune["taken_from_store"] == ["k" * 24]
    assert plan.prefinetune["work"].wall_s == 0  # taken from the store, not trained
    assert "the store holds it (kkkk" in markdown(plan)


def test_memory_that_does_not_fit_says_what_to_change(tmp_path):
    cfg = load_pipeline("paper-large", REPO / "pipelines.paper.yaml")
    big = cfg.model_copy(update={"prefinetune": cfg.prefinetune.model_copy(update={"micro_batch_size": 64})})
    h100 = device("h100", "bf16", tmp_path)
    plan = plan_pipeline("paper-large", big, ArtifactStore(str(tmp_path / "store")), h100, 64)
    memory = plan.prefinetune["memory"]
    assert memory["fits"] is False and memory["gib"]["total"] > 80
    advice = " | ".join(memory["advice"])
    assert "micro_batch_size 8 " in advice and "zero_stage 2" in advice and "activation checkpointing" in advice
    assert "**does not fit**" in markdown(plan)
    fits = plan_pipeline("paper-large", cfg, ArtifactStore(str(tmp_path / "store")), h100, 64).prefinetune["memory"]
    assert fits["fits"] is True and fits["advice"] == []
    # ZeRO-1 shards fp32 master weights, momentum and variance (12 bytes a parameter) over the 64 ranks.
    assert fits["gib"]["optimizer"] == pytest.approx(fits["params"] * 12 / 64 / 2**30)


def test_a_stored_bench_result_sets_the_rate_and_mfu_overrides_it(tmp_path, monkeypatch):
    monkeypatch.setenv(BENCH_RESULTS_ENV, str(tmp_path))
    folder = results_dir("pipelines.yaml")
    assert folder == tmp_path
    assert "ASSUMED" in device("h100", "bf16", folder).rate_source
    (tmp_path / "gpu_check-h100.json").write_text(json.dumps({"mfu": 0.41, "peak_flops": 790e12, "device_name": "NVIDIA H100"}))
    stored = device("h100", "bf16", folder)
    assert (stored.mfu, stored.peak_flops) == (0.41, 989e12) and "gpu_check-h100.json" in stored.rate_source
    assert device("h100", "bf16", folder, mfu=0.2).mfu == 0.2


def test_families_tell_the_plan_their_sequences_and_whether_they_decode():
    from muppet_core.families import get_family
    from muppet_core.tasks.catalog import load_catalog

    for spec in load_catalog().values():
        family = get_family(spec.family)
        assert family.sequences(spec) == (spec.num_choices if spec.family == "multiple_choice" else 1), spec.name
        assert family.decodes == (spec.family == "summarization"), spec.name
