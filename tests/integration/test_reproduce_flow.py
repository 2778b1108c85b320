"""The whole muppet-reproduce flow on a tiny random 2-layer BERT under the Prefect test harness."""

from __future__ import annotations

import json
import math

import pandas as pd

from muppet_core.models.labels import backbone_label
from tests.integration.conftest import BENCHMARKS, PRETRAIN_TASKS, artifact_keys, muppet, write_pipeline


def tiny_records(store) -> list[dict]:
    """The fine-tune records of the tiny pipeline (other tests run other pipelines in the same store)."""
    records = [json.loads(p.read_text()) for p in (store / "finetune").glob("*/record.json")]
    return [r for r in records if r["pipeline"] == "tiny"]


def test_every_stage_wrote_its_artifact(first_run):
    root, _, csv_uri = first_run
    store = root / "store"
    assert len(artifact_keys(store, "data")) == len(PRETRAIN_TASKS) + len(BENCHMARKS)
    (pft,) = artifact_keys(store, "prefinetune")
    pft_dir = store / "prefinetune" / pft
    assert (pft_dir / "encoder" / "model.safetensors").is_file()
    assert set(json.loads((pft_dir / "heads.json").read_text())) == {"rotten_tomatoes", "snli", "ranking", "span"}
    summary = json.loads((pft_dir / "train_summary.json").read_text())
    assert summary["summary"]["steps"] == 3 and summary["summary"]["examples_seen"] == 3 * 3 * 4
    records = tiny_records(store)
    assert sorted((r["variant"], r["benchmark"]) for r in records) == sorted(
        (v, b) for v in ("base", "prefinetuned") for b in BENCHMARKS
    )
    assert all(r["eval_examples"] == 40 and r["train_examples"] == 32 for r in records)
    assert csv_uri == f"{store}/pipelines/tiny/leaderboard.csv"


def test_leaderboard_csv_holds_the_result_records(first_run, tiny_backbone):
    root, _, csv_uri = first_run
    table = pd.read_csv(csv_uri, index_col="model")
    label = backbone_label(tiny_backbone)
    assert list(table.index) == [f"{label} / base", f"{label} / prefinetuned", f"{label} / prefinetuned - base"]
    assert list(table["variant"]) == ["base", "prefinetuned", "delta"] and set(table["selection"]) == {"median"}
    assert list(table.columns) == [
        "backbone", "variant", "variant_key", "selection", "own", "computed_at", "run", "code_version", "older_code",
        *[f"{b}{stat}" for b in BENCHMARKS for stat in ("", ".n", ".min", ".max", ".std", ".failed", ".note", ".scored")],
        "avg.classification", "avg.classification.note", "average", "average.note",
    ]
    records = tiny_records(root / "store")
    for r in records:
        model = f"{label} / {r['variant']}"
        assert math.isclose(table.loc[model, r["benchmark"]], r["metrics"]["accuracy"], rel_tol=1e-12)
        assert table.loc[model, f"{r['benchmark']}.n"] == 1 and table.loc[model, f"{r['benchmark']}.failed"] == 0
        assert 0.0 <= r["metrics"]["accuracy"] <= 1.0
    base = f"{label} / base"
    assert math.isclose(table.loc[base, "average"], table.loc[base, BENCHMARKS].mean(), abs_tol=1e-12)
    delta = table.loc[f"{label} / prefinetuned - base", "sst2"]
    assert math.isclose(delta, table.loc[f"{label} / prefinetuned", "sst2"] - table.loc[base, "sst2"], abs_tol=1e-12)


def test_rerun_is_served_from_the_store_and_a_new_seed_computes_only_its_runs(first_run, tiny_backbone, mirror):
    from flows.reproduce import reproduce

    root, config, _ = first_run
    store = root / "store"
    before = {stage: artifact_keys(store, stage) for stage in ("data", "prefinetune", "finetune")}
    reproduce(pipeline="tiny", config=str(config))
    assert {stage: artifact_keys(store, stage) for stage in before} == before

    write_pipeline(config, tiny_backbone, mirror, store, seeds=[0, 1])
    reproduce(pipeline="tiny", config=str(config))
    after = {stage: artifact_keys(store, stage) for stage in before}
    assert after["data"] == before["data"] and after["prefinetune"] == before["prefinetune"]
    assert {k: after["finetune"][k] for k in before["finetune"]} == before["finetune"]
    new = set(after["finetune"]) - set(before["finetune"])
    assert len(new) == 2 * len(BENCHMARKS)
    assert {json.loads((store / "finetune" / k / "record.json").read_text())["seed"] for k in new} == {1}


def test_results_command_prints_the_published_tables(first_run):
    import io

    root, config, csv_uri = first_run
    run = lambda *a: muppet("results", "tiny", "--config", str(config), *a)  # noqa: E731
    csv = run("--format", "csv")
    assert csv.returncode == 0, csv.stderr
    assert pd.read_csv(io.StringIO(csv.stdout), index_col="model").equals(pd.read_csv(csv_uri, index_col="model"))
    md = run("--format", "md")
    assert " / base ◆ | " in md.stdout and " / prefinetuned ◆ | " in md.stdout  # the pipeline's own backbone is marked
    out = root / "table.json"
    assert run("--format", "json", "--output", str(out)).returncode == 0
    assert [row["variant"] for row in json.loads(out.read_text())["rows"]] == ["base", "prefinetuned"]
