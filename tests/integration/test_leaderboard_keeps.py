"""A pipeline's leaderboard keeps every backbone evaluated on it (issue 19), as a new user finds
it: the pipeline's own backbone, then two more evaluated ad hoc with ``--backbone``, then a
fine-tune setting changed in pipelines.yaml."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from muppet_core.models.labels import backbone_label
from tests.integration.conftest import muppet, write_pipeline
from tests.integration.test_leaderboard_flow import markdown_tables

NAME = "tiny-keeps"


def save_tiny(path: Path, tokenizer_from: str, kind: str, seed: int, hidden: int) -> str:
    """A random 2-layer BERT or RoBERTa with MiniLM's tokenizer, saved as safetensors."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(seed)
    sizes = {"vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 2 * hidden}
    if kind == "roberta":  # pad id and two token types as MiniLM's (BERT's) tokenizer produces them
        model = RobertaModel(RobertaConfig(**sizes, max_position_embeddings=514, type_vocab_size=2, pad_token_id=0))
    else:
        model = BertModel(BertConfig(**sizes, max_position_embeddings=512))
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(path)
    return str(path)


def snapshot(config: Path) -> dict:
    """What `muppet results` prints now: the CSV as a frame, the Markdown and the JSON document."""
    out = {}
    for fmt in ("csv", "md", "json"):
        done = muppet("results", NAME, "--config", str(config), "--format", fmt)
        assert done.returncode == 0, done.stderr
        out[fmt] = done.stdout
    out["csv"] = pd.read_csv(io.StringIO(out["csv"]), index_col="model")
    out["json"] = json.loads(out["json"])
    return out


@pytest.fixture(scope="module")
def runs(prefect_harness, tiny_backbone, minilm_path, mirror, tmp_path_factory):
    """The issue's sequence on the tiny pipeline (pre-finetuning off: it is not what is tested):
    a run with the pipeline's own backbone, then ``--backbone distil-tiny``, then ``--backbone
    roberta-tiny``; what `muppet results` printed after each, and the Prefect table artifact."""
    from prefect.artifacts import Artifact

    from flows.reproduce import reproduce

    root = tmp_path_factory.mktemp("keeps")
    distil = save_tiny(root / "distil-tiny", minilm_path, "bert", seed=1, hidden=48)
    roberta = save_tiny(root / "roberta-tiny", minilm_path, "roberta", seed=2, hidden=32)
    config = write_pipeline(root / "pipelines.yaml", tiny_backbone, mirror, root / "store", seeds=[0], name=NAME, prefinetune=False)
    after = []
    for backbones in (None, [distil], [roberta]):
        reproduce(pipeline=NAME, config=str(config), backbones=backbones)
        after.append(snapshot(config))
    artifact = Artifact.get(f"leaderboard-{NAME}-table")
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    labels = [backbone_label(b) for b in (tiny_backbone, distil, roberta)]
    return {"root": root, "config": config, "after": after, "artifact": table, "labels": labels, "specs": [tiny_backbone, distil, roberta]}


def test_after_three_runs_the_table_holds_every_backbone_and_the_first_two_are_unchanged(runs):
    own, distil, roberta = runs["labels"]
    first, second, third = (a["csv"] for a in runs["after"])
    assert list(first["backbone"].unique()) == [own]
    assert sorted(second["backbone"].unique()) == sorted([own, distil])
    assert sorted(third["backbone"].unique()) == sorted([own, distil, roberta])
    assert len(third) == 3  # one base row per backbone (no pre-finetuning, so no delta rows)
    scores = [c for c in third.columns if c.split(".")[0] in ("sst2", "rte", "avg", "average") and not c.endswith("note")]
    for earlier, backbone in ((first, own), (second, distil)):
        rows = earlier.index[earlier["backbone"] == backbone]
        pd.testing.assert_frame_equal(third.loc[rows, scores], earlier.loc[rows, scores])
        assert list(third.loc[rows, "run"]) == list(earlier.loc[rows, "run"])
    assert third["run"].nunique() == 3 and third["computed_at"].notna().all()
    assert list(third.loc[third["own"], "backbone"].unique()) == [own]
    assert [r["model"] for r in runs["artifact"]] == list(third.index)  # the Prefect table artifact follows
    md = runs["after"][2]["md"]
    ranked = list(markdown_tables(md))
    averages = [third.loc[m, "average"] for m in ranked]
    assert averages == sorted(averages, reverse=True) and set(ranked) == set(third.index)
    assert f"{own} / base ◆" in md and "left out" not in md
    assert (runs["root"] / "store" / "pipelines" / NAME / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"


def test_a_changed_fine_tune_setting_leaves_only_the_backbone_run_again_and_says_why(runs):
    from flows.reproduce import reproduce

    own, distil, roberta = runs["labels"]
    config = runs["config"]
    doc = yaml.safe_load(config.read_text())
    doc["pipelines"][NAME]["finetune"]["epochs"] = 2
    config.write_text(yaml.safe_dump(doc))
    reproduce(pipeline=NAME, config=str(config), backbones=[runs["specs"][2]])
    now = snapshot(config)
    assert list(now["csv"]["backbone"].unique()) == [roberta]
    assert [(x["backbone"], x["rows"]) for x in now["json"]["left_out"]] == [(own, 1), (distil, 1)]
    md = now["md"]
    assert "**2 row(s) of 2 backbone(s) left out**" in md
    assert f"- `{own}` (1 row(s), " in md and "computed with other fine-tune settings: epochs 1.0, now 2.0" in md
    history = muppet("results", NAME, "--config", str(config), "--history", "--format", "csv")
    runs_seen = pd.read_csv(io.StringIO(history.stdout))
    assert list(runs_seen["backbone"]) == [own, distil, roberta, roberta]
