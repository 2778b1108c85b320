"""The study's shape at a tiny size: base, pre-finetuned and the head-reuse control, two seeds, the mean ±
std per cell, the paired tests, what was scored and the examples each pre-finetuning task received, all
printed back by `muppet results`."""

from __future__ import annotations

import io
import json

import pandas as pd

from muppet_core.evaluation.results import CONTROL_VARIANT
from muppet_core.models.labels import backbone_label
from tests.integration.conftest import SMALL_TASKS, muppet, write_pipeline

BENCHMARKS = ["rte", "rotten_tomatoes"]  # rotten_tomatoes was pre-finetuned (its head is reused), rte was not


def test_the_study_table_has_the_control_the_spread_and_the_paired_tests(prefect_harness, tiny_backbone, mirror, tmp_path):
    from flows.reproduce import reproduce

    # one fine-tune at a time: fine-tunes in threads of one process share torch's random generator
    config = write_pipeline(tmp_path / "pipelines.yaml", tiny_backbone, mirror, tmp_path / "store", seeds=[0, 1], name="tiny-study",
                            finetune={"benchmarks": BENCHMARKS, "selection": "mean", "head_reuse_control": True, "concurrency": 1}, tasks=SMALL_TASKS)
    csv_uri = reproduce(pipeline="tiny-study", config=str(config))
    label = backbone_label(tiny_backbone)
    printed = muppet("results", "tiny-study", "--config", str(config), "--format", "csv")
    assert printed.returncode == 0, printed.stderr
    table = pd.read_csv(io.StringIO(printed.stdout), index_col="model")
    assert table.equals(pd.read_csv(csv_uri, index_col="model"))
    variants = ["base", "prefinetuned", CONTROL_VARIANT]
    assert list(table.index) == [f"{label} / {v}" for v in variants] + [f"{label} / {v} - base" for v in variants[1:]]
    records = [json.loads(p.read_text()) for p in (tmp_path / "store" / "finetune").glob("*/record.json")]
    assert sorted((r["variant"], r["benchmark"], r["seed"]) for r in records) == sorted((v, b, s) for v in variants for b in BENCHMARKS for s in (0, 1))
    for v in variants:
        for b in BENCHMARKS:
            scores = pd.Series([r["metrics"]["accuracy"] for r in records if (r["variant"], r["benchmark"]) == (v, b)])
            assert table.loc[f"{label} / {v}", b] == scores.mean() and abs(table.loc[f"{label} / {v}", f"{b}.std"] - scores.std(ddof=1)) < 1e-12
    digest = {(r["variant"], r["benchmark"], r["seed"]): r["weights_sha256"] for r in records}
    # the control differs from the pre-finetuned variant only where there is a head to reuse
    assert all(digest[("prefinetuned", "rte", s)] == digest[(CONTROL_VARIANT, "rte", s)] for s in (0, 1))
    assert all(digest[("prefinetuned", "rotten_tomatoes", s)] != digest[(CONTROL_VARIANT, "rotten_tomatoes", s)] for s in (0, 1))
    assert set(table["rte.scored"]) - {float("nan")} >= {"official validation split [rte/val.jsonl]: a seeded sample (seed 0) of 40 of 277 scored"}
    md = muppet("results", "tiny-study", "--config", str(config), "--format", "md").stdout
    assert f"| {label} / prefinetuned vs base | 4 | rte, rotten_tomatoes |" in md and f"| {label} / {CONTROL_VARIANT} vs base | 4 |" in md
    board = json.loads(muppet("results", "tiny-study", "--config", str(config), "--format", "json").stdout)
    ((key, exposure),) = board["examples_per_task"].items()
    assert key == table.loc[f"{label} / prefinetuned", "variant_key"] and set(exposure) == set(SMALL_TASKS)
    assert sum(t["received"] for t in exposure.values()) == 3 * 3 * 4 and all(t["available"] for t in exposure.values())
    assert "### Examples per pre-finetuning task" in md
