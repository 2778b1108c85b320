"""Hub-ready export: the model card of the tiny pipeline's pre-finetuned model parses as the Hub's
(``huggingface_hub.ModelCard``) with its metadata and the leaderboard's scores, and `muppet push`
uploads it with the encoder and the heads to a recording Hub endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from huggingface_hub import ModelCard

from muppet_core.artifacts.store import ArtifactStore
from muppet_core.errors import MuppetError
from muppet_core.leaderboard.schema import Leaderboard
from muppet_core.leaderboard.stage import published_path
from muppet_core.publish.card import scored_card
from muppet_core.publish.hub import choose, find_scored
from muppet_core.tasks.catalog import get_task
from muppet_core.training.export import base_metadata, export_card
from tests.conftest import REPO
from tests.integration.conftest import PRETRAIN_TASKS
from tests.servers.hub import HubRecorder

TOKEN = "hf_muppetPushTestToken0123456789abcdef"


@pytest.fixture(scope="module")
def prefinetuned(first_run):
    """(store, leaderboard, the pre-finetuned row, its export folder, the leaderboard CSV as pandas reads it)."""
    root, config, csv_uri = first_run
    store = ArtifactStore(str(root / "store"))
    board = Leaderboard.model_validate_json(store.read_text(published_path("tiny", "json")))
    row = next(r for r in board.rows if r.variant == "prefinetuned")
    table = pd.read_csv(csv_uri, index_col="model")
    return store, board, row, store.fetch("prefinetune", row.variant_key), table


def test_base_metadata_comes_from_the_base_models_card(minilm_path, tiny_backbone):
    assert base_metadata(minilm_path) == {"license": "apache-2.0"}  # MiniLM's card names a license, no base model
    assert base_metadata("sentence-transformers/all-MiniLM-L6-v2") == {"base_model": "sentence-transformers/all-MiniLM-L6-v2"}
    assert base_metadata(tiny_backbone) == {}  # a folder without a card: nothing is known


def test_model_card_round_trips_with_the_leaderboards_scores(prefinetuned, minilm_path, tmp_path):
    store, board, row, export, table = prefinetuned
    written = ModelCard.load(export / "encoder" / "README.md")  # the card the export wrote
    assert written.data.tags == ["muppet", "pre-finetuning", "multi-task"]
    assert written.data.datasets == sorted({get_task(t).hub.path for t in PRETRAIN_TASKS})
    assert written.data.library_name == "transformers" and written.data.eval_results is None
    summary = json.loads((export / "train_summary.json").read_text())
    assert f"| {PRETRAIN_TASKS[0]} | {summary['tasks'][PRETRAIN_TASKS[0]]['examples']} |" in written.text

    # the same export on MiniLM's card carries its license; scored, saved and loaded back
    card = export_card(minilm_path, PRETRAIN_TASKS, summary, {"steps": 3}, summary["final_loss_per_task"])
    scored_card(card, board, row, model_name="muppet-tiny", base_model="org/base").save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert (loaded.data.license, loaded.data.base_model, loaded.data.model_name) == ("apache-2.0", "org/base", "muppet-tiny")
    assert loaded.data.datasets == written.data.datasets and loaded.data.tags == written.data.tags
    results = {r.dataset_name: r for r in loaded.data.eval_results}
    assert sorted(results) == sorted(board.benchmarks) == ["rte", "sst2"]
    for name, result in results.items():
        spec = get_task(name)
        assert (result.dataset_type, result.dataset_config, result.dataset_split) == (spec.hub.path, spec.hub.name, "validation")
        assert result.task_type == "text-classification" and result.metric_type == spec.metric
        assert result.metric_value == table.loc[row.model, name]  # the leaderboard CSV's score, at full precision
    assert f"| sst2 | {results['sst2'].metric_type} | {table.loc[row.model, 'sst2']:.4f} |" in loaded.text


def test_push_finds_only_a_pre_finetuned_row_it_is_given(prefinetuned):
    store, board, row, export, table = prefinetuned
    stores = {"tiny": store, "other": store}  # a pipeline that published nothing is passed over
    for target in (row.model, row.backbone, row.variant_key, row.variant_key[:8]):
        assert [s.row for s in find_scored(stores, target)] == [row]
    base = next(r for r in board.rows if r.variant == "base")
    for target in (base.model, row.variant_key[:7], "nosuch"):
        with pytest.raises(MuppetError, match=f"^no leaderboard shows a pre-finetuned variant '{re.escape(target)}'"):
            choose(find_scored(stores, target), target)


def muppet_push(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", "push", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_push_uploads_encoder_heads_and_card_to_the_endpoint(first_run, prefinetuned, tmp_path):
    root, config, _ = first_run
    store, board, row, export, table = prefinetuned
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_TOKEN"))}
    with HubRecorder() as hub:
        env = {**base_env, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home")}
        refused = muppet_push(row.model, "--repo", "org/muppet-tiny", "--config", str(config), env=env)
        assert refused.returncode == 2 and not hub.recorded.requests
        assert refused.stderr.strip() == "muppet: error: HF_TOKEN is not set: export a Hugging Face token with write access to org/muppet-tiny"

        done = muppet_push(row.variant_key[:8], "--repo", "org/muppet-tiny", "--private", "--config", str(config), env={**env, "HF_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pushed {row.model} (key {row.variant_key}, 2 score(s) from 'tiny') to org/muppet-tiny: {hub.url}/org/muppet-tiny/commit/")
    assert TOKEN not in done.stdout + done.stderr

    calls = [r.path.split("?")[0] for r in hub.recorded.requests]
    assert calls == ["/api/repos/create", "/api/validate-yaml", "/api/models/org/muppet-tiny/preupload/main", "/api/models/org/muppet-tiny/commit/main"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in hub.recorded.requests)
    assert hub.recorded.repos == [{"name": "muppet-tiny", "organization": "org", "visibility": "private"}]

    files = hub.recorded.files["org/muppet-tiny"]
    encoder = {p.name for p in (export / "encoder").iterdir()}
    assert set(files) == encoder | {"heads.safetensors", "heads.json", "pooling.txt", "train_summary.json", "loss_curves.png"}
    assert files["pooling.txt"] == (export / "pooling.txt").read_bytes()  # the pooling the heads were trained with
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert files[name] == (export / "encoder" / name).read_bytes()
    assert files["heads.safetensors"] == (export / "heads.safetensors").read_bytes()

    (tmp_path / "README.md").write_bytes(files["README.md"])
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.model_name == "muppet-tiny" and "muppet" in card.data.tags
    assert {r.dataset_name: r.metric_value for r in card.data.eval_results} == {b: table.loc[row.model, b] for b in ("sst2", "rte")}


