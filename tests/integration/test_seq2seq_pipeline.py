"""The whole tiny pipeline on a tiny random BART and a tiny random T5: all four families pre-finetune
(summarization with the backbone's own decoder), fine-tune from both variants and score."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from safetensors.torch import load_file

from muppet_core.models.labels import backbone_label
from tests.integration.conftest import PRETRAIN_TASKS, artifact_keys, write_pipeline

TASKS = [*PRETRAIN_TASKS, "xsum"]  # classification, multiple choice, span and summarization
# BART fine-tunes on every family; T5 (kept short for the suite's time) on spans and summaries, the
# two that differ most from BART (a tokenizer with nothing before the text, a decoder starting at <pad>).
BENCHMARKS = {"bart": ["rte", "commonsenseqa", "squad", "xsum"], "t5": ["squad", "xsum"]}


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_a_seq2seq_backbone_runs_the_tiny_pipeline(kind, request, prefect_harness, mirror, tmp_path):
    from flows.reproduce import reproduce

    backbone = request.getfixturevalue(f"tiny_{kind}")
    benchmarks = BENCHMARKS[kind]
    finetune = {"benchmarks": benchmarks, "max_train_examples": 16, "max_eval_examples": 8, "num_beams": 2}
    config = write_pipeline(tmp_path / "pipelines.yaml", backbone, mirror, tmp_path / "store", seeds=[0], name=kind, finetune=finetune, tasks=TASKS)
    csv_uri = reproduce(pipeline=kind, config=str(config))
    store = tmp_path / "store"

    (pft,) = artifact_keys(store, "prefinetune")
    pft_dir = store / "prefinetune" / pft
    assert json.loads((pft_dir / "encoder" / "config.json").read_text())["is_encoder_decoder"]  # exported whole
    assert (pft_dir / "pooling.txt").read_text() == "eos"
    assert set(json.loads((pft_dir / "heads.json").read_text())) == {"rotten_tomatoes", "snli", "ranking", "span", "generation"}
    heads = {k.split(".")[0] for k in load_file(str(pft_dir / "heads.safetensors"))}
    assert heads == {"rotten_tomatoes", "snli", "ranking", "span"}  # no second decoder: summarization is the backbone's own
    summary = json.loads((pft_dir / "train_summary.json").read_text())
    assert summary["summary"]["steps"] == 3 and summary["summary"]["examples_seen"] == 3 * 3 * 4

    records = [json.loads(p.read_text()) for p in (store / "finetune").glob("*/record.json")]
    assert sorted((r["variant"], r["benchmark"]) for r in records) == sorted((v, b) for v in ("base", "prefinetuned") for b in benchmarks)
    assert not list(store.glob("failures/**/*.json"))
    for r in records:
        assert r["status"] == "ok" and r["eval_examples"] == 8 and r["train_examples"] == 16
        assert all(0.0 <= v <= 1.0 for v in r["metrics"].values()), r
    xsum = [r for r in records if r["benchmark"] == "xsum"]
    assert all(set(r["metrics"]) == {"rouge2", "rouge1", "rougeL", "rougeLsum"} for r in xsum)

    table = pd.read_csv(csv_uri, index_col="model")
    label = backbone_label(backbone)
    assert list(table.index) == [f"{label} / base", f"{label} / prefinetuned", f"{label} / prefinetuned - base"]
    assert table.loc[f"{label} / base", benchmarks].notna().all()
