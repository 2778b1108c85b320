"""The fine-tune fan-out as the paper measured it: seeds, a learning-rate grid, the two experiments."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from tests.integration.conftest import artifact_keys

PRETRAIN = ["rotten_tomatoes", "trec", "commonsenseqa"]  # two families, data prepared in about a second (not SNLI's or SQuAD's seconds)


def _pipeline(path, backbone, mirror, store, name, finetune, prefinetune=None):
    doc = {"pipelines": {name: {
        "backbone": backbone, "store": str(store), "data": {"mirror": mirror},
        "prefinetune": {"tasks": PRETRAIN, "steps": 2, "micro_batch_size": 4, "tasks_per_step": 2, "max_length": 48,
                        "max_train_examples": 32, **(prefinetune or {})},
        "finetune": {"batch_size": 8, "max_length": 48, "max_train_examples": 16, "max_eval_examples": 24, **finetune},
    }}}
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _records(store):
    return [json.loads(p.read_text()) for p in (store / "finetune").glob("*/record.json")]


def test_changing_one_seed_recomputes_only_that_seeds_runs(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce

    store = tmp_path / "store"
    finetune = {"benchmarks": ["sst2", "rte"], "seeds": [0, 1]}  # two benchmarks: the runs of each are cached apart
    config = _pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, store, "grid", finetune)
    reproduce(pipeline="grid", config=config)
    before = artifact_keys(store, "finetune")
    assert len(before) == 2 * 2 * 2  # benchmarks x variants x seeds, each its own cached task
    _pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, store, "grid", {**finetune, "seeds": [0, 2]})
    reproduce(pipeline="grid", config=config)
    after = artifact_keys(store, "finetune")
    assert {k: after[k] for k in before} == before  # nothing rewritten
    new = set(after) - set(before)
    records = {k: json.loads((store / "finetune" / k / "record.json").read_text()) for k in new}
    assert len(new) == 2 * 2 and {r["seed"] for r in records.values()} == {2}
    table = pd.read_csv(store / "pipelines" / "grid" / "leaderboard.csv", index_col="model")
    assert set(table["sst2.n"].dropna()) == {2.0}  # seeds 0 and 2 of the current grid


def test_learning_rate_grid_and_both_experiments(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce

    store = tmp_path / "store"
    finetune = {"benchmarks": ["rte"], "seeds": [0], "learning_rates": [1e-4, 3e-5], "train_fractions": [0.25, 0.5]}
    config = _pipeline(tmp_path / "p.yaml", tiny_backbone, mirror, store, "exp", finetune, {"task_counts": [2, 3]})
    reproduce(pipeline="exp", config=config)
    records = _records(store)
    main = [r for r in records if r["experiment"] is None]
    assert sorted((r["variant"], r["learning_rate"]) for r in main) == [("base", 3e-5), ("base", 1e-4), ("prefinetuned", 3e-5), ("prefinetuned", 1e-4)]
    efficiency = [r for r in records if r["experiment"] == "sample_efficiency"]
    # the grid selects, so a slice of train is held out for it first; the fractions take the rest
    kept = {r["variant"]: r["train_examples"] for r in main}
    assert all(r["selection_examples"] and r["train_examples"] + r["selection_examples"] == 16 for r in main)
    assert sorted((r["variant"], r["train_examples"]) for r in efficiency) == sorted(
        (v, max(1, round(f * kept[v]))) for v in kept for f in (0.25, 0.5)
    )
    counts = [r for r in records if r["experiment"] == "task_count"]
    assert sorted(r["prefinetune_tasks"] for r in counts) == [2, 3]
    assert len(artifact_keys(store, "prefinetune")) == 2  # all three tasks (shared with the main variant) and a nested pair
    published = store / "pipelines" / "exp"
    assert (published / "curves-sample_efficiency.png").stat().st_size > 1000
    assert (published / "curves-task_count.png").stat().st_size > 1000
    table = pd.read_csv(published / "leaderboard.csv", index_col="model")
    rows = table[table["variant"] != "delta"]
    assert len(rows) == 2 and rows["rte.note"].str.contains("the best of 2 on the selection slice of train").all()


def test_fine_tunes_hold_a_prefect_global_concurrency_limit(prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from flows.finetune import CONCURRENCY_LIMIT, ensure_limit

    ensure_limit(2)  # created by the fan-out when missing (the runs above have created it already)
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(CONCURRENCY_LIMIT)
        assert limit.limit >= 1 and limit.active_slots == 0  # every run released its slot
        client.update_global_concurrency_limit(CONCURRENCY_LIMIT, GlobalConcurrencyLimitUpdate(limit=5))  # an operator's change stands
    ensure_limit(2)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(CONCURRENCY_LIMIT).limit == 5
